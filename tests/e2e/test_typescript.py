"""A TypeScript SDK worker (npm @temporalio/worker) through sealgate."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path


TS = Path(__file__).parent / "ts"


def test_typescript_worker_through_sealgate(sealgate, temporal):
    assert (TS / "node_modules" / "@temporalio" / "worker").is_dir(), (
        "node modules missing: scripts/test runs `npm ci` in tests/e2e/ts"
    )
    token = uuid.uuid4().hex[:12]
    secret = f"SECRET{token}"
    r = subprocess.run(
        ["node", "run.js", sealgate.address, token, secret], cwd=TS, capture_output=True, text=True, timeout=180
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["result"] == f"ts done: charged {secret}-ts-input-ts-card"

    async def history() -> bytes:
        from temporalio.client import Client

        client = await Client.connect(temporal.address)
        h = await client.get_workflow_handle(out["workflowId"]).fetch_history()
        started = h.events[0].workflow_execution_started_event_attributes
        assert started.input.payloads[0].metadata["encoding"] == b"binary/encrypted"
        assert started.memo.fields["note"].metadata["encoding"] == b"binary/encrypted"
        return b"".join(e.SerializeToString() for e in h.events)

    stored = asyncio.run(history())
    assert secret.encode() not in stored
