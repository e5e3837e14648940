// Error statuses as grpc-js and the TypeScript client see them, against
// ADDRESS (a dev server or sealgate in front of it). Prints one JSON line:
// for each case the SDK's error class and the raw gRPC code, details and
// grpc-status-details-bin (base64) of the same call made on the raw service.
// Usage: node errors.js ADDRESS MISSING_ID DUPLICATE_ID (workflow ids: one
// that must not exist, one that this script starts twice)
//
// The SDK calls keep the client's default retry interceptor (as users run
// it) but each has a deadline, so a status the SDK takes for a transient
// fault (e.g. "Call ended without gRPC status") fails in seconds rather than
// after a minute of retries; the raw calls go on a connection without
// interceptors, so they report the first status as received.
const { randomUUID } = require('crypto');
const { Client, Connection } = require('@temporalio/client');

const SDK_CALL_DEADLINE_MS = 8000;

function sdkOutcome(err) {
  if (err === null) return { error: null };
  const cause = err.cause ? { code: err.cause.code ?? null, details: err.cause.details ?? null } : null;
  return { error: err.constructor.name, message: err.message, cause };
}

function grpcOutcome(err) {
  if (err === null) return { code: 0 };
  const bin = err.metadata?.get?.('grpc-status-details-bin') ?? [];
  return {
    code: err.code ?? null,
    details: err.details ?? null,
    statusDetailsBin: bin.length ? Buffer.from(bin[0]).toString('base64') : null,
    message: err.message,
  };
}

async function outcome(fn) {
  try {
    await fn();
    return null;
  } catch (err) {
    return err;
  }
}

async function main() {
  const [address, missing, duplicated] = process.argv.slice(2);
  const connection = await Connection.connect({ address, connectTimeout: '15s' });
  const client = new Client({ connection, namespace: 'default' });
  const raw = await Connection.connect({ address, connectTimeout: '15s', interceptors: [] });
  const service = raw.workflowService;
  const sdk = (fn) => outcome(() => connection.withDeadline(Date.now() + SDK_CALL_DEADLINE_MS, fn));
  const taskQueue = `ts-errors-${duplicated}`;
  const out = {};

  // A workflow that does not exist.
  out.describeMissing = {
    sdk: sdkOutcome(await sdk(() => client.workflow.getHandle(missing).describe())),
    grpc: grpcOutcome(
      await outcome(() =>
        service.describeWorkflowExecution({ namespace: 'default', execution: { workflowId: missing } }),
      ),
    ),
  };

  // The same workflow id started twice while the first run is open.
  const first = await client.workflow.start('Anything', { taskQueue, workflowId: duplicated });
  out.runId = first.firstExecutionRunId;
  out.startTwice = {
    sdk: sdkOutcome(await sdk(() => client.workflow.start('Anything', { taskQueue, workflowId: duplicated }))),
    grpc: grpcOutcome(
      await outcome(() =>
        service.startWorkflowExecution({
          namespace: 'default',
          workflowId: duplicated,
          workflowType: { name: 'Anything' },
          taskQueue: { name: taskQueue },
          requestId: randomUUID(),
          identity: 'sealgate-e2e-errors',
        }),
      ),
    ),
  };
  await first.terminate('test done');
  await connection.close();
  await raw.close();
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
