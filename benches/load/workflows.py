"""Workflows per second completed by a real Temporal dev server with Python
workers: direct vs through sealgate (snappy + AES-256-GCM), same server,
same run, alternating rounds. Usage: benches/load/workflows [COUNT]."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import harness  # noqa: E402
sys.path.insert(0, str(Path(__file__).parent))
from order_workflow import Order, charge  # noqa: E402


async def round_(address: str, count: int) -> float:
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    order = {"amount": 42.5, "card": "4111 1111 1111 1111", "items": [{"sku": f"SKU-{i}", "qty": i} for i in range(20)]}
    async with Worker(client, task_queue=queue, workflows=[Order], activities=[charge],
                      max_concurrent_workflow_tasks=100, max_concurrent_activities=100):
        started = time.monotonic()
        handles = await asyncio.gather(*[
            client.start_workflow(Order.run, order, id=f"{queue}-{i}", task_queue=queue) for i in range(count)
        ])
        await asyncio.gather(*[h.result() for h in handles])
        return count / (time.monotonic() - started)


def main() -> int:
    import logging

    logging.getLogger("temporalio").setLevel(logging.ERROR)
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    work = harness.WORK / "workflows"
    shutil.rmtree(work, ignore_errors=True)
    server = gate = None
    try:
        server = harness.start_temporal(work / "temporal")
        config = harness.sealgate_config(work / "sealgate", harness.generated_codec_section())
        gate = harness.start_sealgate(work / "sealgate", config, upstream=f"http://{server.address}")
        results = {"direct": [], "sealgate": []}
        for _ in range(3):
            for name, address in (("direct", server.address), ("sealgate", gate.address)):
                results[name].append(asyncio.run(round_(address, count)))
                print(f"{name}: {results[name][-1]:.1f} workflows/s", file=sys.stderr, flush=True)
        best = {k: max(v) for k, v in results.items()}
        print(f"| path | workflows/s (best of 3 rounds of {count}) | all rounds |")
        print("|---|---|---|")
        for k, v in results.items():
            print(f"| {k} | {best[k]:.1f} | {', '.join(f'{x:.1f}' for x in v)} |")
        print(f"\nthrough sealgate / direct = {best['sealgate'] / best['direct']:.2f}")
        return 0
    finally:
        for p in (gate, server):
            if p is not None:
                p.proc.stop()


if __name__ == "__main__":
    sys.exit(main())
