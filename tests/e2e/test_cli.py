"""The `temporal` CLI through sealgate shows plaintext; directly, ciphertext."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid

import harness


def cli(*args: str) -> str:
    r = subprocess.run([harness.temporal_cli(), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def input_payload(show_json: str) -> dict:
    events = json.loads(show_json)["events"]
    return events[0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]


def test_cli_start_and_show(sealgate, temporal):
    secret = f"SECRET{uuid.uuid4().hex[:12]}-cli"
    wid = f"cli-{uuid.uuid4().hex[:8]}"
    cli("workflow", "start", "--address", sealgate.address, "--type", "Anything",
        "--task-queue", "nobody-polls", "--workflow-id", wid, "--input", json.dumps(secret))

    via = cli("workflow", "show", "--address", sealgate.address, "--workflow-id", wid, "--output", "json")
    p = input_payload(via)
    assert base64.b64decode(p["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(p["data"])) == secret

    direct = cli("workflow", "show", "--address", temporal.address, "--workflow-id", wid, "--output", "json")
    p = input_payload(direct)
    assert base64.b64decode(p["metadata"]["encoding"]) == b"binary/encrypted"
    assert secret.encode() not in base64.b64decode(p["data"])
    assert secret not in direct

    # Text output too, as a person reads it.
    text = cli("workflow", "describe", "--address", sealgate.address, "--workflow-id", wid)
    assert wid in text
    cli("workflow", "terminate", "--address", sealgate.address, "--workflow-id", wid, "--reason", "test done")
