// A TypeScript-SDK workflow (plain JavaScript, so no compile step).
const { proxyActivities } = require('@temporalio/workflow');

const { charge } = proxyActivities({ startToCloseTimeout: '30 seconds' });

async function tsScenario(secret) {
  const charged = await charge(`${secret}-ts-card`);
  return `ts done: ${charged}`;
}

module.exports = { tsScenario };
