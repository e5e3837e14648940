"""The workflow the history-export benchmark records: STEPS short
activities one after another, each with a small JSON input and result.
Its own module so the Python SDK's sandbox can import it.

Events: started + first workflow task (4), then per activity scheduled,
started, completed and the workflow task it wakes (6), then completed (1):
4 + 6 * STEPS + 1, i.e. 1,001 for 166 steps. Payloads: the input, 2 per
step, the result."""

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def step(arg: dict) -> dict:
    return {"marker": arg["marker"], "step": arg["step"], "result": f"{arg['marker']}-result-{arg['step']:04d}"}


@workflow.defn
class Steps:
    @workflow.run
    async def run(self, arg: dict) -> dict:
        last = None
        for i in range(arg["steps"]):
            last = await workflow.execute_activity(
                step,
                {"marker": arg["marker"], "step": i, "note": f"{arg['marker']}-input-{i:04d}", "pad": "x" * 64},
                start_to_close_timeout=timedelta(seconds=30),
            )
        return {"marker": arg["marker"], "steps": arg["steps"], "last": last}
