"""Shared fixtures: one Temporal dev server and one sealgate in front of it
for the session; everything under .work/e2e and stopped by PID."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import harness  # noqa: E402


@pytest.fixture(scope="session")
def workdir() -> Path:
    # SEALGATE_E2E_WORKDIR gives a session its own directory, so two pytest
    # sessions at once (a developer's and a helper's) do not wipe each other.
    d = Path(os.environ.get("SEALGATE_E2E_WORKDIR") or harness.WORK / "e2e")
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


@pytest.fixture(scope="session")
def temporal(workdir):
    server = harness.start_temporal(workdir / "temporal", {"CustomKeyword": "Keyword"})
    yield server
    server.proc.stop()


@pytest.fixture(scope="session")
def sealgate(workdir, temporal):
    d = workdir / "sealgate"
    config = harness.sealgate_config(d, harness.generated_codec_section())
    gate = harness.start_sealgate(d, config, upstream=f"http://{temporal.address}")
    yield gate
    code = gate.proc.stop()
    assert code == 0, f"sealgate exited {code}:\n{gate.proc.tail()}"
