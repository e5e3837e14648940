"""A workflow with a large input and a large activity result, for the
external storage tests (imported by the worker: workflows live in a module
the sandbox can import)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def make_large(canary: str, size: int) -> str:
    """A `size`-byte result that carries `canary` and does not compress."""
    import hashlib

    out = [canary]
    n, i = len(canary), 0
    while n < size:
        chunk = hashlib.sha256(f"{canary}{i}".encode()).hexdigest()
        out.append(chunk)
        n += len(chunk)
        i += 1
    return "".join(out)[:size]


@workflow.defn
class LargePayloadWorkflow:
    @workflow.run
    async def run(self, data: str, canary: str, result_size: int) -> dict:
        result = await workflow.execute_activity(
            make_large, args=[canary, result_size], start_to_close_timeout=timedelta(seconds=60)
        )
        return {
            "input_len": len(data),
            "input_has_canary": canary in data,
            "result_len": len(result),
            "result_has_canary": canary in result,
        }
