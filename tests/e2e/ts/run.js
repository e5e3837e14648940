// Runs a TypeScript SDK worker and client against ADDRESS (sealgate) and
// prints {"workflowId", "result"} as JSON. Usage: node run.js ADDRESS ID SECRET
// (ID names the workflow and task queue; SECRET only ever travels in payloads).
const { Worker, NativeConnection } = require('@temporalio/worker');
const { Client, Connection } = require('@temporalio/client');

async function main() {
  const [address, id, secret] = process.argv.slice(2);
  const taskQueue = `ts-${id}`;
  const workflowId = `ts-${id}`;
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection,
    taskQueue,
    workflowsPath: require.resolve('./workflows'),
    activities: require('./activities'),
  });
  const client = new Client({ connection: await Connection.connect({ address }) });
  const result = await worker.runUntil(
    client.workflow.execute('tsScenario', {
      taskQueue,
      workflowId,
      args: [`${secret}-ts-input`],
      memo: { note: `${secret}-ts-memo` },
    }),
  );
  await connection.close();
  console.log(JSON.stringify({ workflowId, result }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
