"""The sealgate demo: a real Temporal dev server, sealgate in front of it
(config/dev.toml), a Python worker running a sample workflow through
sealgate, then each payload as the worker saw it next to what the server
stored. Everything it starts is stopped before it exits."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import harness  # noqa: E402
import scenario  # noqa: E402

PAYLOAD = "temporal.api.common.v1.Payload"


def payloads(msg, path=""):
    """(path, Payload) for every payload inside a protobuf message."""
    for field, value in msg.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        name = f"{path}.{field.name}" if path else field.name
        if field.message_type.GetOptions().map_entry:
            for k, v in value.items():
                if hasattr(v, "DESCRIPTOR"):
                    yield from one(v, f"{name}[{k}]")
        elif hasattr(value, "DESCRIPTOR"):
            yield from one(value, name)
        else:  # a repeated field
            for i, v in enumerate(value):
                yield from one(v, f"{name}[{i}]")


def one(v, path):
    if v.DESCRIPTOR.full_name == PAYLOAD:
        yield path, v
    else:
        yield from payloads(v, path)


def worker_view(p) -> str:
    data = p.data.decode(errors="replace")
    return data if len(data) <= 44 else data[:41] + "..."


def stored_view(p) -> str:
    enc = p.metadata.get("encoding", b"").decode()
    if enc == "binary/encrypted":
        key = p.metadata.get("encryption-key-id", b"").decode()
        return f"{enc}, key {key}: {p.data[:6].hex()}… ({len(p.data)} bytes)"
    return f"{enc}, in clear: {worker_view(p)}"


async def show(gate: str, server: str, workflow_id: str) -> None:
    from temporalio.client import Client

    via = await Client.connect(gate)
    direct = await Client.connect(server)
    seen = await via.get_workflow_handle(workflow_id).fetch_history()
    stored = await direct.get_workflow_handle(workflow_id).fetch_history()
    rows = []
    for a, b in zip(seen.events, stored.events):
        kind = a.WhichOneof("attributes").removesuffix("_event_attributes")
        for (path, pa), (_, pb) in zip(payloads(a), payloads(b)):
            path = path.split("_event_attributes.", 1)[-1].replace("application_failure_info.", "")
            rows.append((f"{a.event_id:>2} {kind}", path, worker_view(pa), stored_view(pb)))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    head = ("event", "payload", "what the worker saw", "what Temporal stored")
    print("  ".join(h.ljust(w[i]) if i < 3 else h for i, h in enumerate(head)))
    print("  ".join("-" * (w[i] if i < 3 else 44) for i in range(4)))
    for r in rows:
        print("  ".join(c.ljust(w[i]) if i < 3 else c for i, c in enumerate(r)))


def main() -> int:
    import logging

    # The sample's failing activity is on purpose; keep its traceback out of the demo.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    started = time.monotonic()
    work = harness.WORK / "demo"
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    server = gate = None
    try:
        print("Starting a Temporal dev server ...", flush=True)
        server = harness.start_temporal(work / "temporal", {"CustomKeyword": "Keyword"})
        print(f"  Temporal frontend on {server.address}")
        print("Starting sealgate in front of it (config/dev.toml: snappy + AES-256-GCM, DEVELOPMENT key) ...")
        gate = harness.start_sealgate(work / "sealgate", ROOT / "config" / "dev.toml", upstream=f"http://{server.address}")
        print(f"  sealgate on {gate.address} -> {server.address}")
        print("Running the sample workflow with a Python worker connected to sealgate ...\n", flush=True)
        outcome = asyncio.run(scenario.run(gate.address))
        print("The workflow's result, as the client got it:")
        print("  " + json.dumps(outcome.seen, indent=2).replace("\n", "\n  "))
        print(f"\nIts history, read through sealgate vs directly from the server ({outcome.workflow_id}):\n")
        asyncio.run(show(gate.address, server.address, outcome.workflow_id))
        stored = asyncio.run(scenario.stored(server.address, outcome.workflow_id))
        leaks = [s for s in outcome.secrets for v in stored.values() if s.encode() in v["history_bytes"]]
        print(
            f"\nThe server holds {'NO' if not leaks else 'SOME'} plaintext payload values. "
            f"Search attribute {scenario.SEARCH_ATTRIBUTE}={outcome.search_attribute!r} stays plaintext so "
            "Temporal can index it; failure messages and stack traces are encrypted too "
            "(codec.encode_failure_attributes, on by default)."
        )
        print(f"Done in {time.monotonic() - started:.1f}s.")
        return 1 if leaks else 0
    finally:
        for p in (gate, server):
            if p is not None:
                p.proc.stop()


if __name__ == "__main__":
    sys.exit(main())
