// What the server sees of query answers from a worker behind sealgate: a
// TypeScript worker connected to GATE (sealgate) serves a queryTarget
// workflow (client-errors-workflows.js) whose input is SECRET, started
// through GATE; then a client connected straight to DIRECT (the dev server,
// no codec) asks the successful query `status` and the failing query
// `failing`, as anyone reading the server could. Prints one JSON line:
// {status: {error, message} | {value}, failing: {...}}.
// Usage: node query-through-server.js GATE DIRECT ID SECRET
const { Client, Connection } = require('@temporalio/client');
const { NativeConnection, Worker } = require('@temporalio/worker');

const DEADLINE_MS = 10000;

async function outcome(connection, fn) {
  try {
    return { error: null, value: await connection.withDeadline(Date.now() + DEADLINE_MS, fn) };
  } catch (err) {
    return { error: err.constructor.name, message: err.message };
  }
}

async function main() {
  const [gate, direct, id, secret] = process.argv.slice(2);
  const native = await NativeConnection.connect({ address: gate });
  const worker = await Worker.create({
    connection: native,
    taskQueue: id,
    workflowsPath: require.resolve('./client-errors-workflows'),
    maxCachedWorkflows: 0,
  });
  const gateConnection = await Connection.connect({ address: gate, connectTimeout: '15s' });
  const directConnection = await Connection.connect({ address: direct, connectTimeout: '15s' });
  const viaGate = new Client({ connection: gateConnection });
  const viaDirect = new Client({ connection: directConnection });
  const out = {};
  try {
    await worker.runUntil(async () => {
      const handle = await viaGate.workflow.start('queryTarget', { taskQueue: id, workflowId: id, args: [secret] });
      const raw = viaDirect.workflow.getHandle(id);
      out.status = await outcome(directConnection, () => raw.query('status'));
      out.failing = await outcome(directConnection, () => raw.query('failing', 'no secret in this argument'));
      await handle.signal('finish');
      await handle.result();
    });
  } finally {
    await gateConnection.close();
    await directConnection.close();
    await native.close();
  }
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
