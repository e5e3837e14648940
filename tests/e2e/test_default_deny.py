"""Default deny (DESIGN.md section 1): what sealgate cannot classify it refuses,
and every namespace a call names is authorized, not only the one in the
`temporal-namespace` header. Real dev server; raw HTTP/2 (h2) and grpcio
clients, because the SDKs never send these requests."""

from __future__ import annotations

import subprocess
import time
import uuid

import grpc
import pytest
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import IndexedValueType, NamespaceState
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    DeleteNamespaceRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeWorkflowExecutionRequest,
    GetSystemInfoRequest,
    GetWorkflowExecutionHistoryRequest,
    ListNamespacesRequest,
    StartWorkflowExecutionRequest,
    TerminateWorkflowExecutionRequest,
)

import h2raw
import harness
from rpcstatus import Stubs, call_error, describe_error

START = "/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution"


def start_request(workflow_id: str, secret: str) -> bytes:
    return StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=workflow_id,
        workflow_type=WorkflowType(name="DefaultDeny"),
        task_queue=TaskQueue(name="default-deny-nobody-polls"),
        input=Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=f'"{secret}"'.encode())]),
        request_id=str(uuid.uuid4()),
        identity="sealgate-e2e-raw-h2",
    ).SerializeToString()


def post_start(address: str, content_types: list[bytes]) -> tuple[str, str, h2raw.Response]:
    """Sends one framed StartWorkflowExecution with these content-type
    header fields (in order, plus `te: trailers`) and checks that they are
    exactly what went out on the wire."""
    workflow_id = f"default-deny-{uuid.uuid4().hex[:10]}"
    secret = f"secret-{uuid.uuid4().hex[:12]}"
    headers = [(b"content-type", ct) for ct in content_types] + [(b"te", b"trailers")]
    resp, sent = h2raw.post(address, START, h2raw.grpc_frame(start_request(workflow_id, secret)), headers)
    sent_types = [v for k, v in sent if k == b"content-type"]
    assert sent_types == content_types, f"the raw client did not send the content types as asked: {sent}"
    return workflow_id, secret, resp


def stored(temporal, workflow_id: str) -> bytes | None:
    """The workflow's history bytes as the dev server keeps them, or None
    when the server does not know the workflow (asked directly)."""
    with Stubs(temporal.address) as s:
        execution = WorkflowExecution(workflow_id=workflow_id)
        try:
            s.workflow.DescribeWorkflowExecution(
                DescribeWorkflowExecutionRequest(namespace="default", execution=execution), timeout=20
            )
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, f"describing {workflow_id} directly: {describe_error(e)}"
            return None
        history = s.workflow.GetWorkflowExecutionHistory(
            GetWorkflowExecutionHistoryRequest(namespace="default", execution=execution), timeout=20
        ).history
        s.workflow.TerminateWorkflowExecution(
            TerminateWorkflowExecutionRequest(namespace="default", workflow_execution=execution, reason="test done"),
            timeout=20,
        )
        return history.SerializeToString()


ODD_CONTENT_TYPES = {
    "duplicated-text-then-grpc": [b"text/plain", b"application/grpc"],
    "duplicated-grpc-then-text": [b"application/grpc", b"text/plain"],
    "non-ascii-parameter": [b"application/grpc;\xff"],
    "upper-case": [b"Application/grpc"],
}


@pytest.mark.parametrize("content_types", ODD_CONTENT_TYPES.values(), ids=ODD_CONTENT_TYPES.keys())
def test_odd_or_duplicated_content_type_is_refused_and_nothing_starts(sealgate, temporal, content_types):
    """A request whose content type is not exactly one gRPC content type is
    refused by sealgate itself — 415, INVALID_ARGUMENT, a `sealgate:`
    message — and never reaches the server: the workflow it would have
    started does not exist there. (Forwarded unread, the request would be
    accepted by grpc-go, which takes any gRPC-looking value, and start the
    workflow with its input in plaintext.)"""
    workflow_id, secret, resp = post_start(sealgate.address, content_types)

    history = stored(temporal, workflow_id)
    if history is not None:
        pytest.fail(
            f"content types {content_types} reached the server: workflow {workflow_id} exists "
            f"(input stored in plaintext: {secret.encode() in history}); sealgate answered {resp.describe()}"
        )
    assert resp.status == 415, f"expected HTTP 415 from sealgate, got {resp.describe()}"
    assert resp.grpc_status == grpc.StatusCode.INVALID_ARGUMENT.value[0], (
        f"expected grpc-status 3 (INVALID_ARGUMENT), got {resp.describe()}"
    )
    assert (resp.grpc_message or "").startswith("sealgate:"), (
        f"expected sealgate's own refusal, got grpc-message {resp.grpc_message!r} ({resp.describe()})"
    )


def test_the_server_itself_would_accept_duplicated_content_types(temporal):
    """Why the refusal matters: sent directly, the dev server (grpc-go)
    accepts a duplicated content type and a non-ASCII parameter and starts
    the workflow. A gateway that let them through unread would forward a
    plaintext payload."""
    for content_types in (ODD_CONTENT_TYPES["duplicated-text-then-grpc"], ODD_CONTENT_TYPES["non-ascii-parameter"]):
        workflow_id, secret, resp = post_start(temporal.address, content_types)
        assert resp.grpc_status == 0, f"{content_types} directly: {resp.describe()} {resp.grpc_message!r}"
        history = stored(temporal, workflow_id) or b""
        assert secret.encode() in history, f"{content_types} directly: the workflow was not started as sent"


def test_the_same_request_with_one_grpc_content_type_goes_through_encrypted(sealgate, temporal):
    """Control for the refusals above: the very same raw request with a
    single `application/grpc` is a normal call through sealgate — it
    starts the workflow, with its input encrypted."""
    workflow_id, secret, resp = post_start(sealgate.address, [b"application/grpc"])
    assert resp.status == 200 and resp.grpc_status == 0, f"{resp.describe()} {resp.grpc_message!r}"
    history = stored(temporal, workflow_id) or b""
    assert b"binary/encrypted" in history, f"workflow {workflow_id} was not started with an encrypted input"
    assert secret.encode() not in history, "the input reached the server in plaintext"


# --- namespaces named in the body are authorized ----------------------------------

TEAM1_TOKEN = "token-team1-only-0123456789"
ADMIN_TOKEN = "token-admin-system-0123456789"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([harness.temporal_cli(), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def teams(temporal):
    """Namespaces team1 and team2, created directly on the dev server."""
    for ns in ("team1", "team2"):
        r = cli("operator", "namespace", "create", "--namespace", ns, "--address", temporal.address)
        assert r.returncode == 0 or "already" in r.stderr.lower(), r.stderr
    deadline = time.monotonic() + 30
    for ns in ("team1", "team2"):
        while cli("operator", "namespace", "describe", ns, "--address", temporal.address).returncode != 0:
            assert time.monotonic() < deadline, f"namespace {ns} not visible on the dev server"
            time.sleep(0.3)
    return ("team1", "team2")


@pytest.fixture(scope="module")
def gateway(workdir, temporal, teams):
    """sealgate with bearer tokens: one for team1 only, one admin token for
    every namespace and for calls that name none (`system = true`)."""
    d = workdir / "sealgate-default-deny"
    body = harness.generated_codec_section() + f"""
[inbound]
auth = "bearer"
[[inbound.rules]]
token = "{TEAM1_TOKEN}"
namespaces = ["team1"]
[[inbound.rules]]
token = "{ADMIN_TOKEN}"
namespaces = ["*"]
system = true
"""
    gate = harness.start_sealgate(d, harness.sealgate_config(d, body), upstream=f"http://{temporal.address}")
    yield gate
    assert gate.proc.stop() == 0, gate.proc.tail()


def team1_metadata(namespace_header: bool = True) -> list[tuple[str, str]]:
    md = [("authorization", f"Bearer {TEAM1_TOKEN}")]
    if namespace_header:
        md.append(("temporal-namespace", "team1"))
    return md


def assert_team2_untouched(temporal) -> None:
    """Directly on the dev server: team2 is still registered and has no
    `Leak` search attribute."""
    with Stubs(temporal.address) as s:
        ns = s.workflow.DescribeNamespace(DescribeNamespaceRequest(namespace="team2"), timeout=20)
        assert ns.namespace_info.state == NamespaceState.NAMESPACE_STATE_REGISTERED, (
            f"team2 is {NamespaceState.Name(ns.namespace_info.state)} on the server"
        )
        attrs = s.operator.ListSearchAttributes(ListSearchAttributesRequest(namespace="team2"), timeout=20)
        custom = sorted(attrs.custom_attributes)
        assert "Leak" not in custom, "a team1 token added a search attribute to team2"


BODY_NAMESPACE_CALLS = {
    "AddSearchAttributes": lambda s: (
        s.operator.AddSearchAttributes,
        AddSearchAttributesRequest(
            namespace="team2", search_attributes={"Leak": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
        ),
    ),
    "DescribeNamespace": lambda s: (s.workflow.DescribeNamespace, DescribeNamespaceRequest(namespace="team2")),
    # Last: if it ever got through, it would take team2 away from the others.
    "DeleteNamespace": lambda s: (s.operator.DeleteNamespace, DeleteNamespaceRequest(namespace="team2")),
}


@pytest.mark.parametrize("namespace_header", [True, False], ids=["header-team1", "no-header"])
@pytest.mark.parametrize("call", BODY_NAMESPACE_CALLS.values(), ids=BODY_NAMESPACE_CALLS.keys())
def test_a_namespace_named_only_in_the_body_is_authorized(gateway, temporal, call, namespace_header):
    """A team1 token cannot act on team2 by naming it in the request body —
    whether its `temporal-namespace` header says team1 or is absent:
    PERMISSION_DENIED naming team2, and directly on the server team2 is
    unchanged."""
    with Stubs(gateway.address) as s:
        fn, request = call(s)
        try:
            response, err = fn(request, metadata=team1_metadata(namespace_header), timeout=20), None
        except grpc.RpcError as e:
            response, err = None, e
    assert_team2_untouched(temporal)
    assert err is not None, f"the team1 token was allowed to act on team2; the call returned {response!r}"
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED, describe_error(err)
    assert "team2" in err.details(), f"the denial should name the namespace: {err.details()!r}"


def test_the_token_still_works_for_its_own_namespace(gateway):
    """Control: the same token, the same OperatorService, its own namespace
    in the body — allowed."""
    with Stubs(gateway.address) as s:
        attrs = s.operator.ListSearchAttributes(
            ListSearchAttributesRequest(namespace="team1"), metadata=team1_metadata(), timeout=20
        )
    assert "WorkflowId" in attrs.system_attributes


@pytest.mark.parametrize("namespace_header", [False, True], ids=["no-header", "header-team1"])
def test_a_call_naming_no_namespace_needs_a_system_rule(gateway, namespace_header):
    """ListNamespaces names no namespace (and lists them all): a token
    limited to team1 gets PERMISSION_DENIED — also when its
    `temporal-namespace` header says team1 — while the admin token, whose
    rule has `system = true`, may list them."""
    with Stubs(gateway.address) as s:
        err = call_error(s.workflow.ListNamespaces, ListNamespacesRequest(), metadata=team1_metadata(namespace_header))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, describe_error(err)

        listed = s.workflow.ListNamespaces(
            ListNamespacesRequest(page_size=100), metadata=[("authorization", f"Bearer {ADMIN_TOKEN}")], timeout=20
        )
    names = {n.namespace_info.name for n in listed.namespaces}
    assert {"default", "team1"} <= names, f"admin listed {sorted(names)}"


@pytest.mark.parametrize("namespace_header", [False, True], ids=["no-header", "header-team1"])
def test_get_system_info_needs_only_authentication(gateway, namespace_header):
    """GetSystemInfo (every SDK's handshake) names no namespace yet is
    allowed to any authenticated caller; without a token it is
    UNAUTHENTICATED."""
    with Stubs(gateway.address) as s:
        info = s.workflow.GetSystemInfo(
            GetSystemInfoRequest(), metadata=team1_metadata(namespace_header), timeout=20
        )
        assert info.server_version, info
        err = call_error(s.workflow.GetSystemInfo, GetSystemInfoRequest())
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, describe_error(err)
