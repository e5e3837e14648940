"""Error statuses reach every gRPC stack through sealgate exactly as they do
directly (DESIGN.md sections 1 and 4: "trailers-only kept trailers-only",
status details decoded and passed on). Each test makes the same calls once
against the dev server and once through sealgate, and compares:

- grpc-go: the `temporal` CLI;
- grpc-js: the TypeScript client (`ts/errors.js`);
- grpc-core: grpcio with Temporal's generated stubs;
- the wire itself: a raw HTTP/2 client (the response's form).

The Rust-core SDKs (Python `temporalio`) are left out on purpose: they
tolerate what the others reject."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import uuid
from pathlib import Path

import grpc
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.errordetails.v1 import NotFoundFailure, WorkflowExecutionAlreadyStartedFailure
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
    TerminateWorkflowExecutionRequest,
)

import h2raw
import harness
from rpcstatus import Stubs, call_error, decode_status, describe_error, details_bin

TS = Path(__file__).parent / "ts"
BROKEN_TRAILERS = "without sending trailers"


def sides(temporal, sealgate) -> dict[str, str]:
    return {"direct": temporal.address, "sealgate": sealgate.address}


def new_id(what: str) -> str:
    return f"errors-{what}-{uuid.uuid4().hex[:10]}"


# --- the wire ------------------------------------------------------------------------


def test_a_trailers_only_status_stays_trailers_only(temporal, sealgate):
    """The dev server answers DescribeWorkflowExecution of a missing workflow
    trailers-only (one HEADERS frame with END_STREAM carrying grpc-status 5,
    grpc-message and grpc-status-details-bin). Through sealgate the response
    has the same form and the same three values: clients such as grpc-go
    treat HEADERS-then-empty-DATA as a stream that ended without trailers."""
    missing = new_id("missing")
    body = h2raw.grpc_frame(
        DescribeWorkflowExecutionRequest(
            namespace="default", execution=WorkflowExecution(workflow_id=missing)
        ).SerializeToString()
    )
    path = "/temporal.api.workflowservice.v1.WorkflowService/DescribeWorkflowExecution"
    headers = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
    got = {side: h2raw.post(address, path, body, headers)[0] for side, address in sides(temporal, sealgate).items()}
    direct, via = got["direct"], got["sealgate"]

    assert direct.trailers_only and direct.grpc_status == 5, f"dev server: {direct.describe()}"
    assert via.trailers_only, f"direct was trailers-only, through sealgate: {via.describe()}"
    assert not via.data, f"through sealgate a trailers-only status came with DATA: {via.describe()}"
    for name in ("grpc-status", "grpc-message", "grpc-status-details-bin"):
        assert via.header(name) == direct.header(name), (
            f"{name}: direct {direct.header(name)!r}, through sealgate {via.header(name)!r}"
        )


# --- grpc-go: the temporal CLI -------------------------------------------------------


def cli(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [harness.temporal_cli(), "workflow", *args, "--address", address],
        capture_output=True, text=True, timeout=60,
    )


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_id_of(start_output: str) -> str:
    m = re.search(r"RunId\s+(\S+)", start_output)
    assert m, f"no RunId in `temporal workflow start` output:\n{start_output}"
    return m.group(1)


def test_cli_describe_missing_workflow(temporal, sealgate):
    """`temporal workflow describe` of a missing workflow: the same exit
    code and the same NotFound error line both ways."""
    missing = new_id("missing")
    got = {
        side: cli(address, "describe", "--workflow-id", missing)
        for side, address in sides(temporal, sealgate).items()
    }
    direct, via = got["direct"], got["sealgate"]

    assert direct.returncode != 0 and "not found" in direct.stderr.lower(), f"dev server: {direct.stderr}"
    assert BROKEN_TRAILERS not in via.stderr, f"grpc-go saw a broken status through sealgate: {via.stderr.strip()}"
    assert via.returncode == direct.returncode, f"exit codes: direct {direct.returncode}, sealgate {via.returncode}"
    assert last_line(via.stderr) == last_line(direct.stderr), (
        f"direct: {last_line(direct.stderr)!r}\nsealgate: {last_line(via.stderr)!r}"
    )


def start_twice(address: str, *second_args: str) -> tuple[str, str, subprocess.CompletedProcess]:
    """Starts a fresh workflow id, then starts it again (first run still
    open). Returns (workflow id, first run id, the second start)."""
    wid = new_id("cli-dup")
    common = ["--workflow-id", wid, "--type", "Anything", "--task-queue", f"tq-{wid}"]
    first = cli(address, "start", *common)
    assert first.returncode == 0, f"first start through {address}: {first.stderr}"
    run_id = run_id_of(first.stdout)
    second = cli(address, "start", *common, *second_args)
    cli(address, "terminate", "--workflow-id", wid, "--reason", "test done")
    return wid, run_id, second


def test_cli_start_twice_fails_already_started(temporal, sealgate):
    """`temporal workflow start --fail-existing` of an id whose run is open:
    AlreadyExists both ways, the message naming the open run, the same
    exit code and (ids aside) the same error line."""
    outcome = {}
    for side, address in sides(temporal, sealgate).items():
        wid, run_id, second = start_twice(address, "--fail-existing")
        line = last_line(second.stderr).replace(wid, "<workflow-id>").replace(run_id, "<run-id>")
        outcome[side] = (second.returncode, line, second.stderr.strip())
    (direct_rc, direct_line, direct_err), (via_rc, via_line, via_err) = outcome["direct"], outcome["sealgate"]

    assert direct_rc != 0, f"dev server accepted the second start: {direct_err}"
    assert "already running" in direct_line and "<run-id>" in direct_line, f"dev server: {direct_err}"
    assert BROKEN_TRAILERS not in via_err, f"grpc-go saw a broken status through sealgate: {via_err}"
    assert via_rc == direct_rc, f"exit codes: direct {direct_rc}, sealgate {via_rc}"
    assert via_line == direct_line, f"direct: {direct_line!r}\nsealgate: {via_line!r}"


def test_cli_start_twice_by_default_returns_the_open_run(temporal, sealgate):
    """Without --fail-existing the Go SDK turns ALREADY_EXISTS into the open
    run, reading its run id from the WorkflowExecutionAlreadyStartedFailure
    in grpc-status-details-bin: the second start succeeds with the first
    run's id — both ways, so the status details arrive intact."""
    for side, address in sides(temporal, sealgate).items():
        _, run_id, second = start_twice(address)
        assert second.returncode == 0, f"{side}: second start failed: {second.stderr.strip()}"
        assert run_id_of(second.stdout) == run_id, f"{side}: second start named another run:\n{second.stdout}"


# --- grpc-js: the TypeScript client ------------------------------------------------


def test_typescript_client_errors(temporal, sealgate):
    """@temporalio/client (grpc-js): describing a missing workflow raises
    WorkflowNotFoundError (NOT_FOUND on the raw call, same details and
    grpc-status-details-bin), starting an open workflow id again raises
    WorkflowExecutionAlreadyStartedError (ALREADY_EXISTS, the same
    WorkflowExecutionAlreadyStartedFailure) — through sealgate as directly."""
    assert (TS / "node_modules" / "@temporalio" / "client").is_dir(), (
        "node modules missing: scripts/test runs `npm install` in tests/e2e/ts"
    )
    missing = new_id("ts-missing")
    out, dups = {}, {}
    for side, address in sides(temporal, sealgate).items():
        dups[side] = new_id("ts-dup")
        r = subprocess.run(
            ["node", "errors.js", address, missing, dups[side]], cwd=TS, capture_output=True, text=True, timeout=90
        )
        assert r.returncode == 0, f"errors.js against {side}: {r.stderr[-3000:]}"
        out[side] = json.loads(r.stdout.strip().splitlines()[-1])
    direct, via = out["direct"], out["sealgate"]

    # Direct: what the TypeScript SDK promises.
    assert direct["describeMissing"]["sdk"]["error"] == "WorkflowNotFoundError", direct
    assert direct["describeMissing"]["grpc"]["code"] == 5, direct
    assert direct["startTwice"]["sdk"]["error"] == "WorkflowExecutionAlreadyStartedError", direct
    assert direct["startTwice"]["grpc"]["code"] == 6, direct

    # Through sealgate: the same.
    for case in ("describeMissing", "startTwice"):
        assert via[case]["grpc"]["code"] == direct[case]["grpc"]["code"], (
            f"{case}: raw grpc-js call through sealgate: {via[case]['grpc']}"
        )
        assert via[case]["sdk"]["error"] == direct[case]["sdk"]["error"], (
            f"{case}: the SDK through sealgate raised {via[case]['sdk']}"
        )
    assert via["describeMissing"]["grpc"]["details"] == direct["describeMissing"]["grpc"]["details"]
    assert via["describeMissing"]["grpc"]["statusDetailsBin"] == direct["describeMissing"]["grpc"]["statusDetailsBin"]

    def started_failure(side: str) -> tuple[list[str], WorkflowExecutionAlreadyStartedFailure, str]:
        raw = out[side]["startTwice"]["grpc"]["statusDetailsBin"]
        assert raw, f"{side}: no grpc-status-details-bin on ALREADY_EXISTS: {out[side]['startTwice']}"
        status = decode_status(base64.b64decode(raw))
        details = out[side]["startTwice"]["grpc"]["details"]
        details = details.replace(dups[side], "<workflow-id>").replace(out[side]["runId"], "<run-id>")
        return status.type_urls(), status.unpack(WorkflowExecutionAlreadyStartedFailure), details

    direct_urls, direct_failure, direct_details = started_failure("direct")
    via_urls, via_failure, via_details = started_failure("sealgate")
    assert via_urls == direct_urls
    assert direct_failure.run_id == direct["runId"] and via_failure.run_id == via["runId"]
    assert via_failure.start_request_id and direct_failure.start_request_id
    assert via_details == direct_details


# --- grpc-core: grpcio --------------------------------------------------------------


def test_grpcio_describe_missing_workflow(temporal, sealgate):
    """grpcio: DescribeWorkflowExecution of a missing workflow is NOT_FOUND
    with the same details text and byte-identical grpc-status-details-bin
    (a NotFoundFailure) through sealgate as directly."""
    missing = new_id("grpcio-missing")
    request = DescribeWorkflowExecutionRequest(namespace="default", execution=WorkflowExecution(workflow_id=missing))
    errors = {}
    for side, address in sides(temporal, sealgate).items():
        with Stubs(address) as s:
            errors[side] = call_error(s.workflow.DescribeWorkflowExecution, request)
    direct, via = errors["direct"], errors["sealgate"]

    assert direct.code() == grpc.StatusCode.NOT_FOUND, describe_error(direct)
    assert decode_status(details_bin(direct)).unpack(NotFoundFailure) is not None
    assert via.code() == direct.code(), f"through sealgate: {describe_error(via)}"
    assert via.details() == direct.details()
    assert details_bin(via) == details_bin(direct), (
        f"grpc-status-details-bin: direct {details_bin(direct)!r}, sealgate {details_bin(via)!r}"
    )


def test_grpcio_start_twice_already_exists(temporal, sealgate):
    """grpcio: StartWorkflowExecution of an id whose run is open is
    ALREADY_EXISTS with a WorkflowExecutionAlreadyStartedFailure naming the
    first call's request id and run id — the same status, details text
    (ids aside) and detail types through sealgate as directly."""
    seen = {}
    for side, address in sides(temporal, sealgate).items():
        wid = new_id("grpcio-dup")

        def request() -> StartWorkflowExecutionRequest:
            return StartWorkflowExecutionRequest(
                namespace="default",
                workflow_id=wid,
                workflow_type=WorkflowType(name="Anything"),
                task_queue=TaskQueue(name=f"tq-{wid}"),
                request_id=str(uuid.uuid4()),
                identity="sealgate-e2e-grpcio",
            )

        with Stubs(address) as s:
            first_request = request()
            first = s.workflow.StartWorkflowExecution(first_request, timeout=20)
            err = call_error(s.workflow.StartWorkflowExecution, request())
            s.workflow.TerminateWorkflowExecution(
                TerminateWorkflowExecutionRequest(
                    namespace="default", workflow_execution=WorkflowExecution(workflow_id=wid), reason="test done"
                ),
                timeout=20,
            )
        seen[side] = (wid, first_request.request_id, first.run_id, err)

    def shape(side: str):
        wid, request_id, run_id, err = seen[side]
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS, f"{side}: {describe_error(err)}"
        raw = details_bin(err)
        assert raw, f"{side}: no grpc-status-details-bin: {describe_error(err)}"
        status = decode_status(raw)
        failure = status.unpack(WorkflowExecutionAlreadyStartedFailure)
        assert failure.start_request_id == request_id, f"{side}: {failure}"
        assert failure.run_id == run_id, f"{side}: {failure}"
        normalize = lambda text: text.replace(wid, "<workflow-id>").replace(run_id, "<run-id>")  # noqa: E731
        return status.code, status.type_urls(), normalize(status.message), normalize(err.details())

    direct = shape("direct")
    via = shape("sealgate")
    assert via == direct, f"direct: {direct}\nsealgate: {via}"
