"""The workflow the workflows/s benchmark runs: one activity, a 1 KiB-ish
order as input. Its own module so the Python SDK's sandbox can import it."""

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def charge(order: dict) -> dict:
    return {"charged": order["amount"], "card": order["card"][-4:]}


@workflow.defn
class Order:
    @workflow.run
    async def run(self, order: dict) -> dict:
        return await workflow.execute_activity(charge, order, start_to_close_timeout=timedelta(seconds=30))
