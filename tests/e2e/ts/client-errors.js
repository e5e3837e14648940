// The TypeScript client's error semantics (@temporalio/client on grpc-js),
// each case made on every side given: a side is an ADDRESS (the dev server
// directly, or sealgate in front of it) with its own TypeScript worker
// (@temporalio/worker, connected to the same ADDRESS) serving the
// workflows of client-errors-workflows.js on a task queue of its own.
// Prints one JSON line: {SIDE: {ids, cases: {CASE: {sdk, grpc}}}}, where
// `sdk` is what the client API raised (class, message, cause, extra fields)
// or returned, and `grpc` the raw status of the same request made on a
// connection without interceptors (code, details, grpc-status-details-bin
// in base64).
// Usage: node client-errors.js PREFIX SIDE=ADDRESS [SIDE=ADDRESS ...]
//
// Each SDK call keeps the client's default retry interceptor (as users run
// it) but has a deadline, so a status the SDK takes for a transient fault
// fails in seconds instead of after a minute of retries.
const { randomUUID } = require('crypto');
const { Client, Connection, QueryRejectCondition } = require('@temporalio/client');
const { NativeConnection, Worker, bundleWorkflowCode } = require('@temporalio/worker');

const SDK_CALL_DEADLINE_MS = 10000;

function sdkOutcome(err, value) {
  if (err === null) return { error: null, value: value ?? null };
  const out = { error: err.constructor.name, message: err.message };
  if (err.cause) {
    out.cause = {
      error: err.cause.constructor.name,
      message: err.cause.message ?? null,
      code: err.cause.code ?? null,
      details: typeof err.cause.details === 'string' ? err.cause.details : null,
      type: err.cause.type ?? null,
      nonRetryable: err.cause.nonRetryable ?? null,
      failureDetails: Array.isArray(err.cause.details) ? err.cause.details : null,
    };
  }
  for (const key of ['code', 'workflowId', 'runId', 'workflowType', 'status', 'retryState']) {
    if (err[key] !== undefined) out[key] = err[key];
  }
  return out;
}

function grpcOutcome(err) {
  if (err === null) return { code: 0 };
  const bin = err.metadata?.get?.('grpc-status-details-bin') ?? [];
  return {
    code: err.code ?? null,
    details: err.details ?? null,
    statusDetailsBin: bin.length ? Buffer.from(bin[0]).toString('base64') : null,
  };
}

async function attempt(fn) {
  try {
    return [null, await fn()];
  } catch (err) {
    return [err, undefined];
  }
}

function jsonPayloads(...values) {
  return {
    payloads: values.map((v) => ({
      metadata: { encoding: Buffer.from('json/plain') },
      data: Buffer.from(JSON.stringify(v)),
    })),
  };
}

async function side(name, address, prefix, workflowBundle) {
  const ids = {
    taskQueue: `${prefix}-${name}`,
    missing: `${prefix}-${name}-missing`,
    target: `${prefix}-${name}-target`,
    failed: `${prefix}-${name}-failed`,
    secret: `SECRET-${prefix}-${name}`,
  };
  const native = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection: native,
    taskQueue: ids.taskQueue,
    workflowBundle,
    // No sticky cache: every query is a fresh workflow task, served by replay.
    maxCachedWorkflows: 0,
  });
  const connection = await Connection.connect({ address, connectTimeout: '15s' });
  const client = new Client({ connection, namespace: 'default' });
  const rejecting = new Client({
    connection,
    namespace: 'default',
    workflow: { queryRejectCondition: QueryRejectCondition.NOT_OPEN },
  });
  const raw = await Connection.connect({ address, connectTimeout: '15s', interceptors: [] });
  const service = raw.workflowService;
  const sdk = async (fn) => {
    const [err, value] = await attempt(() => connection.withDeadline(Date.now() + SDK_CALL_DEADLINE_MS, fn));
    return sdkOutcome(err, value);
  };
  const rawCall = async (fn) => grpcOutcome((await attempt(fn))[0]);
  const execution = (workflowId) => ({ workflowId });
  const cases = {};

  const run = async () => {
    // A workflow that does not exist.
    const missing = client.workflow.getHandle(ids.missing);
    cases.describeMissing = {
      sdk: await sdk(() => missing.describe()),
      grpc: await rawCall(() =>
        service.describeWorkflowExecution({ namespace: 'default', execution: execution(ids.missing) }),
      ),
    };
    cases.resultMissing = {
      sdk: await sdk(() => missing.result()),
      grpc: await rawCall(() =>
        service.getWorkflowExecutionHistory({
          namespace: 'default',
          execution: execution(ids.missing),
          waitNewEvent: true,
          historyEventFilterType: 'HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT',
        }),
      ),
    };
    cases.queryMissing = {
      sdk: await sdk(() => missing.query('status')),
      grpc: await rawCall(() =>
        service.queryWorkflow({ namespace: 'default', execution: execution(ids.missing), query: { queryType: 'status' } }),
      ),
    };
    cases.signalMissing = {
      sdk: await sdk(() => missing.signal('finish')),
      grpc: await rawCall(() =>
        service.signalWorkflowExecution({
          namespace: 'default',
          workflowExecution: execution(ids.missing),
          signalName: 'finish',
          requestId: randomUUID(),
          identity: 'sealgate-e2e-client-errors',
        }),
      ),
    };

    // An open workflow, served by this side's worker.
    const target = await client.workflow.start('queryTarget', {
      taskQueue: ids.taskQueue,
      workflowId: ids.target,
      args: [ids.secret],
    });
    ids.targetRunId = target.firstExecutionRunId;
    cases.startTwice = {
      sdk: await sdk(() => client.workflow.start('queryTarget', { taskQueue: ids.taskQueue, workflowId: ids.target, args: [ids.secret] })),
      grpc: await rawCall(() =>
        service.startWorkflowExecution({
          namespace: 'default',
          workflowId: ids.target,
          workflowType: { name: 'queryTarget' },
          taskQueue: { name: ids.taskQueue },
          input: jsonPayloads(ids.secret),
          requestId: randomUUID(),
          identity: 'sealgate-e2e-client-errors',
        }),
      ),
    };
    cases.queryOk = { sdk: await sdk(() => target.query('status')) };
    cases.queryFailing = {
      sdk: await sdk(() => target.query('failing', ids.secret)),
      grpc: await rawCall(() =>
        service.queryWorkflow({
          namespace: 'default',
          execution: execution(ids.target),
          query: { queryType: 'failing', queryArgs: jsonPayloads(ids.secret) },
        }),
      ),
    };
    cases.queryUnknown = {
      sdk: await sdk(() => target.query('noSuchQuery')),
      grpc: await rawCall(() =>
        service.queryWorkflow({ namespace: 'default', execution: execution(ids.target), query: { queryType: 'noSuchQuery' } }),
      ),
    };
    await target.signal('finish');
    cases.resultCompleted = { sdk: await sdk(() => target.result()) };

    // A workflow that failed: its result, and a query that rejects closed runs.
    const failed = await client.workflow.start('failsAtOnce', {
      taskQueue: ids.taskQueue,
      workflowId: ids.failed,
      args: [ids.secret],
    });
    ids.failedRunId = failed.firstExecutionRunId;
    cases.resultFailed = { sdk: await sdk(() => failed.result()) };
    cases.queryRejected = { sdk: await sdk(() => rejecting.workflow.getHandle(ids.failed).query('status')) };
  };

  try {
    await worker.runUntil(run());
  } finally {
    await connection.close();
    await raw.close();
    await native.close();
  }
  return { ids, cases };
}

async function main() {
  const [prefix, ...sides] = process.argv.slice(2);
  const workflowBundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('./client-errors-workflows'),
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} },
  });
  const results = await Promise.all(
    sides.map(async (arg) => {
      const [name, address] = arg.split('=');
      return [name, await side(name, address, prefix, workflowBundle)];
    }),
  );
  console.log(JSON.stringify(Object.fromEntries(results)));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
