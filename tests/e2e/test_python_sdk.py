"""The Python SDK (gzip on, its default) through sealgate to a real dev server."""

from __future__ import annotations

import asyncio

import harness
import pytest
import scenario
from temporalio.client import Client


def assert_ciphertext_only(stored: dict, secrets: list[str]) -> None:
    for wid, s in stored.items():
        for secret in secrets:
            for what in ("history_bytes", "describe_bytes"):
                assert secret.encode() not in s[what], f"{secret} stored in clear in {wid} {what}"


def test_worker_sees_plaintext_and_server_stores_ciphertext(sealgate, temporal):
    outcome = asyncio.run(scenario.run(sealgate.address))
    secret = outcome.secrets[0]
    seen = outcome.seen
    # The worker and client saw every value in clear.
    arg = f"{secret}-input"  # what the workflow was started with
    assert seen["charged"] == f"charged {arg}-card"
    assert seen["child"] == f"child got {arg}-child-input"
    assert seen["failure_detail"] == f"{arg}-failure-detail"
    assert seen["failure_message"] == scenario.FAILURE_MESSAGE
    assert seen["signal"] == f"{secret}-signal"
    assert seen["update"] == f"{secret}-update"
    assert seen["update_result"] == f"accepted {secret}-update"
    assert seen["memo"] == f"{secret}-memo"
    assert seen["query"] == f"waiting with {arg}-query-state"

    # The server, read directly, holds none of it.
    stored = asyncio.run(scenario.stored(temporal.address, outcome.workflow_id))
    assert_ciphertext_only(stored, outcome.secrets)
    main = stored[outcome.workflow_id]
    started = main["history"].events[0].workflow_execution_started_event_attributes
    assert started.input.payloads[0].metadata["encoding"] == b"binary/encrypted"
    assert started.memo.fields["note"].metadata["encoding"] == b"binary/encrypted"
    # Search attributes stay plaintext, so the server can index them...
    assert outcome.search_attribute.encode() in main["describe_bytes"]
    # ...while failure messages and stack traces are encoded (the default).
    assert scenario.FAILURE_MESSAGE.encode() not in main["history_bytes"]
    assert b"Encoded failure" in main["history_bytes"]

    async def listed() -> list[str]:
        client = await Client.connect(temporal.address)
        query = f'{scenario.SEARCH_ATTRIBUTE} = "{outcome.search_attribute}"'
        for _ in range(100):  # visibility is eventually consistent
            ids = [w.id async for w in client.list_workflows(query)]
            if ids:
                return ids
            await asyncio.sleep(0.2)
        return []

    assert asyncio.run(listed()) == [outcome.workflow_id]


@pytest.fixture(scope="module")
def sealgate_readable_failures(workdir, temporal):
    d = workdir / "sealgate-readable-failures"
    config = harness.sealgate_config(d, harness.generated_codec_section(encode_failures=False))
    gate = harness.start_sealgate(d, config, upstream=f"http://{temporal.address}")
    yield gate
    assert gate.proc.stop() == 0


def test_failure_encoding_hides_failure_messages_too(sealgate, temporal):
    outcome = asyncio.run(scenario.run(sealgate.address))
    # The worker still sees the message and details...
    assert outcome.seen["failure_message"] == scenario.FAILURE_MESSAGE
    assert outcome.seen["failure_detail"].endswith("-failure-detail")
    # ...the server sees neither.
    stored = asyncio.run(scenario.stored(temporal.address, outcome.workflow_id))
    assert_ciphertext_only(stored, outcome.secrets + [scenario.FAILURE_MESSAGE])
    failed = [e for e in stored[outcome.workflow_id]["history"].events if e.HasField("activity_task_failed_event_attributes")]
    failure = failed[0].activity_task_failed_event_attributes.failure
    assert failure.message == "Encoded failure"
    assert failure.encoded_attributes.metadata["encoding"] == b"binary/encrypted"


def test_failure_text_stays_readable_when_turned_off(sealgate_readable_failures, temporal):
    """encode_failure_attributes = false: the opt-out during a migration."""
    outcome = asyncio.run(scenario.run(sealgate_readable_failures.address))
    assert outcome.seen["failure_message"] == scenario.FAILURE_MESSAGE
    stored = asyncio.run(scenario.stored(temporal.address, outcome.workflow_id))
    assert_ciphertext_only(stored, outcome.secrets)
    assert scenario.FAILURE_MESSAGE.encode() in stored[outcome.workflow_id]["history_bytes"]
