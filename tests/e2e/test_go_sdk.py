"""The Temporal Go SDK (go.temporal.io/sdk on grpc-go) through sealgate.

tests/e2e/go is a Go module; scripts/setup-go builds it (cached under
.work/go) into one program, `sealgate-go-e2e`, whose subcommands these
tests run:

- `scenario`: a Go worker and a Go client, both connected to sealgate, run
  an activity, a local activity, a child workflow, a failing activity with
  details, two Nexus operations (sync and workflow-run, on an endpoint
  created directly on the dev server), a memo, a Keyword search
  attribute, a query, an update and a signal, every value carrying a
  canary. The test checks what the worker and client saw (plaintext),
  then reads the histories and DescribeWorkflowExecution straight from the
  dev server (Python SDK, raw protobuf) and checks every Payload in them is
  `binary/encrypted` and no canary is anywhere, search attributes aside
  (plaintext, and queryable).
- `errors`: the Go client's errors (NotFound, WorkflowExecutionAlreadyStarted
  with its request id and run id, QueryFailed from a failing handler and an
  unknown query type), directly and through sealgate: the Go error types,
  gRPC codes, messages (ids normalised) and detail types must be identical.
- `protoset`: the Temporal API the Go SDK was built with (go.temporal.io/api),
  as a FileDescriptorSet for sealgate's `[schema] descriptor_set`.

The Go SDK v1.51.0 sends request fields newer than any API crate ships
(`poller_pool_info` on every poll): under the strict default sealgate's
embedded schema refuses those calls, naming the field and the fix, which
`test_go_workers_are_refused_by_the_embedded_schema_saying_why` checks.
The scenario and the query errors therefore run through a sealgate loaded
with the Go SDK's own API (`[schema] descriptor_set`), which is how an
operator adopts a newer API; client calls without a worker run through
the default sealgate too."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio.client import Client

import harness
from stored import payloads, stored

SETUP_GO = harness.ROOT / "scripts" / "setup-go"
SEARCH_ATTRIBUTE = "CustomKeyword"  # registered by conftest's dev server
ENCRYPTED = b"binary/encrypted"
QUERY_FAILURE = "go query handler failed on purpose"  # errors.go
GO_RUN_TIMEOUT = 120  # seconds: the bound on one run of the Go program


# --- the Go program and the gateways ---------------------------------------------------


@pytest.fixture(scope="module")
def go_e2e() -> Path:
    """Builds (or finds, cached) the Go program; its path."""
    r = subprocess.run([str(SETUP_GO)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"scripts/setup-go failed:\n{r.stdout}\n{r.stderr}"
    path = Path(r.stdout.strip().splitlines()[-1])
    assert path.is_file(), f"scripts/setup-go printed {path}, which is not a file"
    return path


def run_go(binary: Path, *args: str, check: bool = True) -> dict:
    """Runs the Go program; the JSON object on its last stdout line."""
    r = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=GO_RUN_TIMEOUT)
    if check:
        assert r.returncode == 0, f"sealgate-go-e2e {args[0]} exited {r.returncode}:\n{r.stderr[-4000:]}"
    lines = r.stdout.strip().splitlines()
    assert lines, f"sealgate-go-e2e {args[0]} printed nothing:\n{r.stderr[-4000:]}"
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def sealgate_go_api(workdir, temporal, go_e2e):
    """A sealgate whose schema is the Go SDK's Temporal API (go.temporal.io/api)."""
    d = workdir / "sealgate-go-api"
    d.mkdir(parents=True, exist_ok=True)
    fds = d / "go-api.fds"
    made = run_go(go_e2e, "protoset", str(fds))
    assert made["files"] > 50, made
    body = harness.generated_codec_section() + f'\n[schema]\ndescriptor_set = "{fds}"\n'
    config = harness.sealgate_config(d, body)
    gate = harness.start_sealgate(d, config, upstream=f"http://{temporal.address}")
    yield gate
    code = gate.proc.stop()
    assert code == 0, f"sealgate exited {code}:\n{gate.proc.tail()}"


GATES = {"go-api-schema": "sealgate_go_api"}


@pytest.fixture(params=list(GATES))
def gate(request):
    return request.getfixturevalue(GATES[request.param])


def create_endpoint(server: harness.TemporalServer, task_queue: str) -> str:
    return harness.create_nexus_endpoint(server, task_queue, "go-e2e")


# --- what the server stores, read directly ---------------------------------------------


async def listed(address: str, query: str) -> list[str]:
    client = await Client.connect(address)
    for _ in range(100):  # visibility is eventually consistent: 20 s at most
        ids = [w.id async for w in client.list_workflows(query)]
        if ids:
            return ids
        await asyncio.sleep(0.2)
    return []


def is_search_attribute(path: str) -> bool:
    return ".search_attributes.indexed_fields[" in path


def assert_stored_ciphertext(held: dict, secret: str, sa_value: str) -> int:
    """No canary in the raw bytes; every Payload binary/encrypted with a key
    id, search attributes aside (plaintext). Returns how many were encrypted."""
    encrypted = 0
    for hid, s in held.items():
        raw = b"".join(e.SerializeToString() for e in s["history"].events) + s["describe"].SerializeToString()
        assert secret.encode() not in raw, f"{secret} stored in clear in {hid}"
        found = [(f"history.{p}", x) for e in s["history"].events for p, x in payloads(e)]
        found += [(f"describe.{p}", x) for p, x in payloads(s["describe"])]
        for path, p in found:
            encoding = p.metadata.get("encoding")
            if is_search_attribute(path):  # ours, and the server's own (BuildIds)
                assert encoding == b"json/plain", f"{hid} {path}: a search attribute must stay plaintext: {p}"
                if path.endswith(f"[{SEARCH_ATTRIBUTE}]"):
                    assert p.data == json.dumps(sa_value).encode(), f"{hid} {path}: {p}"
                continue
            assert encoding == ENCRYPTED, f"{hid} {path} is stored as {encoding!r}"
            assert p.metadata.get("encryption-key-id"), f"{hid} {path} has no encryption-key-id"
            encrypted += 1
    return encrypted


# --- the scenario ----------------------------------------------------------------------


def test_go_scenario_worker_sees_plaintext_server_stores_ciphertext(gate, temporal, go_e2e):
    token = uuid.uuid4().hex[:12]
    task_queue = f"go-scenario-{token}"
    endpoint = create_endpoint(temporal, task_queue)
    out = run_go(
        go_e2e, "scenario",
        "-address", gate.address, "-task-queue", task_queue, "-token", token, "-nexus-endpoint", endpoint,
    )
    secret, wid, sa_value = out["secret"], out["workflow_id"], out["search_attribute"]
    arg = f"{secret}-input"

    # The worker saw every value in clear...
    assert out["worker"]["handlers"] == {
        "activity": f"{arg}-card",
        "local_activity": f"{arg}-local",
        "failing_activity": arg,
        "nexus_sync": f"{arg}-nexus-sync",
        "nexus_workflow": f"{arg}-nexus-workflow",
        "nexus_workflow_id": out["workflow_ids"][2],
    }
    assert out["worker"]["workflow"] == {
        "Input": arg,
        "Charged": f"charged {arg}-card",
        "Local": f"local got {arg}-local",
        "Child": f"child got {arg}-child-input",
        "FailureMessage": f"go activity failed on purpose: {arg}",
        "FailureType": "GoScenarioFailure",
        "FailureDetail": f"{arg}-failure-detail",
        "NexusSync": f"nexus got {arg}-nexus-sync",
        "NexusWorkflow": f"nexus workflow got {arg}-nexus-workflow",
        "Signal": f"{secret}-signal",
        "Update": f"{secret}-update",
        "Memo": f"{secret}-memo",
        "SearchAttribute": sa_value,
    }
    # ...and so did the client, reading through sealgate.
    seen = out["client"]
    assert seen["query"] == f"waiting with {arg}-query-state"
    assert seen["update_result"] == f"accepted {secret}-update"
    assert seen["memo"] == f"{secret}-memo"
    assert seen["search_attribute"] == sa_value
    assert seen["listed_by_search_attribute"] == [wid]
    for hid, history in seen["histories"].items():
        assert history, f"{hid}: no payloads in the history read through sealgate"
        for p in history:
            assert p["encoding"] == "json/plain", f"{hid}: through sealgate {p['path']} is {p['encoding']}"
    read_back = json.dumps(seen["histories"][wid])
    for canary in ("-card", "-local", "-child-input", "-failure-detail", "-nexus-sync", "-nexus-workflow",
                   "-signal", "-update", "-memo"):
        assert f"{canary}" in read_back and secret in read_back, f"{canary} missing from the history read back"

    # The server, read directly, holds ciphertext only.
    held = asyncio.run(stored(temporal.address, out["workflow_ids"]))
    encrypted = assert_stored_ciphertext(held, secret, sa_value)
    # Not a vacuous walk: the main history alone holds about twenty payloads.
    assert encrypted >= 20, f"only {encrypted} encrypted payloads found"

    events = held[wid]["history"].events
    started = events[0].workflow_execution_started_event_attributes
    assert started.memo.fields["note"].metadata["encoding"] == ENCRYPTED
    assert started.search_attributes.indexed_fields[SEARCH_ATTRIBUTE].data == json.dumps(sa_value).encode()
    failed = [e.activity_task_failed_event_attributes for e in events if e.HasField("activity_task_failed_event_attributes")]
    assert len(failed) == 1, failed
    assert failed[0].failure.message == "Encoded failure"
    assert failed[0].failure.encoded_attributes.metadata["encoding"] == ENCRYPTED
    nexus = [e for e in events if e.HasField("nexus_operation_scheduled_event_attributes")]
    assert len(nexus) == 2 and all(
        e.nexus_operation_scheduled_event_attributes.input.metadata["encoding"] == ENCRYPTED for e in nexus
    )
    # The search attribute stays queryable on the server.
    assert asyncio.run(listed(temporal.address, f'{SEARCH_ATTRIBUTE} = "{sa_value}"')) == [wid]


# --- error semantics, direct and through sealgate ---------------------------------------


CLIENT_CASES = (
    "describe_missing", "result_missing", "signal_missing", "query_missing",
    "start_twice", "start_twice_raw", "start_twice_default", "start_twice_names_first",
)
QUERY_CASES = ("query_failed", "query_unknown")


def errors_both_ways(go_e2e: Path, temporal, gate, queries: bool) -> tuple[dict, dict]:
    """The `errors` run against the dev server and against `gate`, at once."""
    token = uuid.uuid4().hex[:10]

    def one(side: str, address: str) -> dict:
        return run_go(
            go_e2e, "errors", f"-queries={'true' if queries else 'false'}",
            "-address", address, "-task-queue", f"go-errors-{token}-{side}", "-token", f"{token}-{side}",
        )

    with ThreadPoolExecutor(2) as pool:
        direct = pool.submit(one, "direct", temporal.address)
        via = pool.submit(one, "sealgate", gate.address)
        return direct.result(), via.result()


def comparable(case: dict) -> dict:
    """A case's outcome without the values that differ per run (ids)."""
    out = dict(case)
    if "already_started" in out:
        out["already_started"] = {k: bool(v) for k, v in out["already_started"].items()}
    return out


def assert_direct_semantics(direct: dict, cases) -> None:
    """What the Go SDK promises against a real server."""
    not_found = "type.googleapis.com/temporal.api.errordetails.v1.NotFoundFailure"
    started = "type.googleapis.com/temporal.api.errordetails.v1.WorkflowExecutionAlreadyStartedFailure"
    query = "type.googleapis.com/temporal.api.errordetails.v1.QueryFailedFailure"
    for case in cases:
        d = direct[case]
        if case.endswith("_missing"):
            assert d["go_type"] == "*serviceerror.NotFound", (case, d)
            assert d["grpc"]["code"] == "NotFound" and d["grpc"]["details"] == [not_found], (case, d)
        elif case in ("start_twice", "start_twice_raw"):
            assert d["go_type"] == "*serviceerror.WorkflowExecutionAlreadyStarted", (case, d)
            assert d["grpc"]["code"] == "AlreadyExists" and d["grpc"]["details"] == [started], (case, d)
            assert d["already_started"]["run_id"] == direct["first_run_id"], (case, d)
            assert d["already_started"]["start_request_id"] == direct["first_request_id"], (case, d)
        elif case == "start_twice_default":
            assert d == {"error": None, "same_run": True}, d
        elif case == "start_twice_names_first":
            assert d == {"request_id": True, "run_id": True}, d
        elif case in QUERY_CASES:
            assert d["go_type"] == "*serviceerror.QueryFailed", (case, d)
            assert d["grpc"]["code"] == "InvalidArgument" and d["grpc"]["details"] == [query], (case, d)
            q = d["query_failed"]
            want = QUERY_FAILURE if case == "query_failed" else "unknown queryType no-such-query."
            assert q["message"].startswith(want) and q["failure_message"] == q["message"], (case, d)
            assert q["has_failure"] and q["failure_encoded_attributes_encoding"] == "", (case, d)


def assert_same(direct: dict, via: dict, cases) -> None:
    for case in cases:
        assert comparable(via[case]) == comparable(direct[case]), (
            f"{case}:\n  direct:   {json.dumps(comparable(direct[case]))}\n"
            f"  sealgate: {json.dumps(comparable(via[case]))}"
        )
    # The ids the error details name are this side's own.
    for case in ("start_twice", "start_twice_raw"):
        assert via[case]["already_started"] == {
            "run_id": via["first_run_id"], "start_request_id": via["first_request_id"],
        }, via[case]


def test_go_client_errors_as_direct(temporal, sealgate, go_e2e):
    """Client calls only (no worker): NotFound for describe / result / signal
    / query of a missing workflow; WorkflowExecutionAlreadyStarted (naming
    the first start's request id and run id) for a second start, which by
    default returns the open run instead. Identical through sealgate."""
    direct, via = errors_both_ways(go_e2e, temporal, sealgate, queries=False)
    assert_direct_semantics(direct, CLIENT_CASES)
    assert_same(direct, via, CLIENT_CASES)


def test_go_query_errors_as_direct(gate, temporal, go_e2e):
    """A Go worker answers the queries: a handler that fails gives QueryFailed
    (InvalidArgument, QueryFailedFailure whose failure has the handler's
    message), an unknown query type likewise, the same through sealgate
    (the worker's failure is encoded on the way in and decoded on the way
    back) as directly."""
    direct, via = errors_both_ways(go_e2e, temporal, gate, queries=True)
    assert_direct_semantics(direct, CLIENT_CASES + QUERY_CASES)
    assert_same(direct, via, CLIENT_CASES + QUERY_CASES)


def test_go_workers_are_refused_by_the_embedded_schema_saying_why(temporal, sealgate, go_e2e):
    """Default deny, not a silent pass: the Go SDK's polls carry a field the
    embedded schema lacks, so each is refused with UNIMPLEMENTED naming the
    message, the field number and the fix; nothing reaches the server."""
    token = uuid.uuid4().hex[:12]
    r = subprocess.run(
        [str(go_e2e), "scenario", "-address", sealgate.address, "-task-queue", f"go-refused-{token}",
         "-token", token],
        capture_output=True, text=True, timeout=GO_RUN_TIMEOUT,
    )
    assert r.returncode != 0, "a Go worker ran through the embedded schema"
    out = r.stdout + r.stderr
    assert "PollWorkflowTaskQueueRequest" in out and "field 11" in out, out[-3000:]
    assert "descriptor_set" in out and "unknown_request_fields" in out, out[-3000:]


def test_descriptor_set_without_rpc_status_still_decodes_error_details(workdir, temporal, go_e2e):
    """`[schema] descriptor_set` as reference.toml suggests making it (a
    `buf build` of temporalio/api) has no google.rpc.Status: no Temporal API
    file imports it. sealgate walks grpc-status-details-bin as a
    google.rpc.Status to decode the failure in a QueryFailedFailure, so it
    must either refuse such a set at start or still decode (with its own
    google.rpc.Status): a Go client must not get the worker's failure
    back as "Encoded failure" with a binary/encrypted blob."""
    d = workdir / "sealgate-go-api-no-rpc-status"
    d.mkdir(parents=True, exist_ok=True)
    fds = d / "go-api-no-rpc-status.fds"
    run_go(go_e2e, "protoset", "-no-rpc-status", str(fds))
    body = harness.generated_codec_section() + f'\n[schema]\ndescriptor_set = "{fds}"\n'
    config = harness.sealgate_config(d, body)
    try:
        gate = harness.start_sealgate(d, config, upstream=f"http://{temporal.address}")
    except RuntimeError as e:  # refused at start: acceptable, if it says why
        assert "google.rpc.Status" in str(e), f"sealgate refused the descriptor set without naming google.rpc.Status:\n{e}"
        return
    try:
        direct, via = errors_both_ways(go_e2e, temporal, gate, queries=True)
    finally:
        code = gate.proc.stop()
    assert code == 0, f"sealgate exited {code}:\n{gate.proc.tail()}"
    assert_direct_semantics(direct, QUERY_CASES)
    assert_same(direct, via, QUERY_CASES)
