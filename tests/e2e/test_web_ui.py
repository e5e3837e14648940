"""The Web UI and the CLI read decoded data through sealgate's Codec Server.

A dev server with its Web UI points `--ui-codec-endpoint` at sealgate;
headless Chromium (Debian's, driven by npm playwright-core) opens the
workflow's page and must show the decoded input and result. A dev server
without the endpoint must not. Screenshots go to .work/e2e/ui/."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
from pathlib import Path

import harness
import pytest
import scenario

TS = Path(__file__).parent / "ts"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Debian's chromium is missing: scripts/test installs it with apt-get when root")
    return found


def open_page(url: str, screenshot: Path, wait_for: str, *texts: str) -> dict:
    r = subprocess.run(
        ["node", "ui.js", url, str(screenshot), wait_for, *texts],
        cwd=TS,
        capture_output=True,
        text=True,
        timeout=240,
        env={**__import__("os").environ, "CHROMIUM": chromium()},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])["found"]


def stack(workdir: Path, name: str, with_codec: bool):
    """A dev server with its UI, and sealgate (with its codec server) in front."""
    ui_port, codec_port = harness.free_port(), harness.free_port()
    endpoint = f"http://127.0.0.1:{codec_port}" if with_codec else None
    server = harness.start_temporal(workdir / name / "temporal", {"CustomKeyword": "Keyword"}, ui_port, endpoint)
    config = harness.sealgate_config(
        workdir / name / "sealgate",
        f'[codec_server]\ncors_origins = ["http://127.0.0.1:{ui_port}"]\n' + harness.generated_codec_section(),
    )
    gate = harness.start_sealgate(
        workdir / name / "sealgate", config, upstream=f"http://{server.address}", codec_port=codec_port
    )
    return server, gate, ui_port, codec_port


def test_web_ui_shows_decoded_payloads_only_with_the_codec_endpoint(workdir):
    shots = workdir / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    procs = []
    try:
        server, gate, ui, codec = stack(workdir, "ui-codec", with_codec=True)
        procs += [gate, server]
        outcome = asyncio.run(scenario.run(gate.address))
        secret = outcome.secrets[0]
        url = f"http://127.0.0.1:{ui}/namespaces/default/workflows/{outcome.workflow_id}"
        found = open_page(url, shots / "with-codec.png", outcome.workflow_id, f"{secret}-input", f"{secret}-signal")
        assert found == {f"{secret}-input": True, f"{secret}-signal": True}, found

        # The CLI reads through the same endpoint.
        show = subprocess.run(
            [harness.temporal_cli(), "workflow", "show", "--address", server.address,
             "--workflow-id", outcome.workflow_id, "--codec-endpoint", f"http://127.0.0.1:{codec}", "-o", "json"],
            capture_output=True, text=True, timeout=60,
        )
        assert show.returncode == 0, show.stderr
        started = json.loads(show.stdout)["events"][0]["workflowExecutionStartedEventAttributes"]
        data = base64.b64decode(started["input"]["payloads"][0]["data"])
        assert json.loads(data) == f"{secret}-input"

        # A UI without the codec endpoint shows the page, not the plaintext.
        server2, gate2, ui2, _ = stack(workdir, "ui-plain", with_codec=False)
        procs += [gate2, server2]
        outcome2 = asyncio.run(scenario.run(gate2.address))
        secret2 = outcome2.secrets[0]
        url2 = f"http://127.0.0.1:{ui2}/namespaces/default/workflows/{outcome2.workflow_id}"
        found = open_page(url2, shots / "without-codec.png", outcome2.workflow_id, f"{secret2}-input")
        assert found == {f"{secret2}-input": False}, found
    finally:
        for p in procs:
            p.proc.stop()
