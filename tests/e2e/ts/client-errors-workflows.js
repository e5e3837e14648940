// Workflows for client-errors.js (plain JavaScript, bundled by the worker).
const { ApplicationFailure, condition, defineQuery, defineSignal, setHandler } = require('@temporalio/workflow');

const statusQuery = defineQuery('status');
const failingQuery = defineQuery('failing');
const finish = defineSignal('finish');

// Open until signalled; answers `status`, and `failing` throws.
async function queryTarget(secret) {
  let finished = false;
  setHandler(statusQuery, () => `status ${secret}`);
  setHandler(failingQuery, (arg) => {
    throw new Error(`query handler failed: ${arg} (workflow input ${secret})`);
  });
  setHandler(finish, () => {
    finished = true;
  });
  await condition(() => finished);
  return `finished ${secret}`;
}

// Fails at once with an application failure carrying details.
async function failsAtOnce(secret) {
  throw ApplicationFailure.create({
    message: `workflow failed: ${secret}`,
    type: 'OrderRejected',
    nonRetryable: true,
    details: [{ secret }],
  });
}

module.exports = { queryTarget, failsAtOnce };
