"""Two real dev servers behind one sealgate: namespaces routed to each,
names translated (local `team2` is `acme-team2.test` on the second server),
and callers limited to their namespaces by bearer token."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import harness
import scenario

REMOTE = "acme-team2.test"
TOKEN_ALL = "token-team2-and-default-0123"
TOKEN_DEFAULT = "token-default-only-0123456"


@pytest.fixture(scope="module")
def temporal2(workdir):
    server = harness.start_temporal(
        workdir / "temporal2", {scenario.SEARCH_ATTRIBUTE: "Keyword"}, namespaces=[REMOTE]
    )
    yield server
    server.proc.stop()


@pytest.fixture(scope="module")
def gateway(workdir, temporal, temporal2):
    d = workdir / "sealgate-routing"
    body = harness.generated_codec_section() + f"""
[upstreams.two]
address = "http://{temporal2.address}"
[upstreams.two.namespaces]
prefix = "acme-"
suffix = ".test"

[[routes]]
namespace = "team2"
upstream = "two"

[inbound]
auth = "bearer"
[[inbound.rules]]
token = "{TOKEN_ALL}"
namespaces = ["default", "team2"]
[[inbound.rules]]
token = "{TOKEN_DEFAULT}"
namespaces = ["default"]
"""
    gate = harness.start_sealgate(d, harness.sealgate_config(d, body), upstream=f"http://{temporal.address}")
    yield gate
    assert gate.proc.stop() == 0, gate.proc.tail()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_a_namespace_routed_and_translated_runs_the_whole_scenario(gateway, temporal, temporal2):
    outcome = asyncio.run(
        scenario.run(gateway.address, namespace="team2", rpc_metadata=bearer(TOKEN_ALL))
    )
    secret = outcome.secrets[0]
    assert outcome.seen["child"] == f"child got {secret}-input-child-input"
    assert outcome.seen["signal"] == f"{secret}-signal"

    async def check() -> None:
        # Stored on the second server under its own name, encrypted.
        direct = await Client.connect(temporal2.address, namespace=REMOTE)
        history = await direct.get_workflow_handle(outcome.workflow_id).fetch_history()
        raw = b"".join(e.SerializeToString() for e in history.events)
        assert secret.encode() not in raw
        child_started = [
            e.child_workflow_execution_started_event_attributes
            for e in history.events
            if e.HasField("child_workflow_execution_started_event_attributes")
        ]
        assert child_started[0].namespace == REMOTE
        # Through sealgate, the same history names the local namespace.
        via = await Client.connect(gateway.address, namespace="team2", rpc_metadata=bearer(TOKEN_ALL))
        history = await via.get_workflow_handle(outcome.workflow_id).fetch_history()
        child_started = [
            e.child_workflow_execution_started_event_attributes
            for e in history.events
            if e.HasField("child_workflow_execution_started_event_attributes")
        ]
        assert child_started[0].namespace == "team2"
        # The first server never saw it.
        first = await Client.connect(temporal.address)
        with pytest.raises(RPCError):
            await first.get_workflow_handle(outcome.workflow_id).describe()

    asyncio.run(check())


def test_tokens_limit_namespaces(gateway, temporal):
    async def check() -> None:
        limited = await Client.connect(gateway.address, namespace="team2", rpc_metadata=bearer(TOKEN_DEFAULT))
        with pytest.raises(RPCError) as e:
            await limited.start_workflow("Anything", id=f"x-{uuid.uuid4().hex[:8]}", task_queue="nobody")
        assert e.value.status == RPCStatusCode.PERMISSION_DENIED
        assert "team2" in e.value.message

        # Without a token even connecting fails (the SDK's GetSystemInfo).
        with pytest.raises(RuntimeError) as e:
            await Client.connect(gateway.address, namespace="default")
        assert "Unauthenticated" in str(e.value)
        assert "Bearer" in str(e.value)

        # The default namespace goes to the first server.
        ok = await Client.connect(gateway.address, namespace="default", rpc_metadata=bearer(TOKEN_DEFAULT))
        wid = f"routed-default-{uuid.uuid4().hex[:8]}"
        await ok.start_workflow("Anything", id=wid, task_queue="nobody")
        first = await Client.connect(temporal.address)
        desc = await first.get_workflow_handle(wid).describe()
        assert desc.id == wid
        await first.get_workflow_handle(wid).terminate("test done")

    asyncio.run(check())
