"""Nexus through sealgate, end to end: a caller workflow and a Nexus handler
(Python SDK workers, both connected to sealgate) against a real dev server.

- Failed Nexus operations in the modern wire form (a Temporal Failure) and
  in the legacy one (a `nexus.v1.Failure` whose JSON `details` hold the
  Temporal Failure): forced by a cancel handler that raises (cancel tasks
  never announce failure support) and by a dev server started with
  `nexusoperation.useNewFailureWireFormat=false`.
- A System Nexus envelope: a workflow's SignalWithStart
  (`__temporal_system` endpoint), whose outer payload stays readable and
  whose inner payloads are encrypted.

Each test runs its own sealgate whose upstream is a loopback TCP relay (the
"tap") in front of the dev server. The tap keeps every byte sealgate sends
upstream, so the tests can (a) prove no canary left sealgate in clear, not
only that none reached history, and (b) parse the Nexus task completions
sealgate forwarded, to show which wire form was exercised. Stored state is
read directly from the dev server (raw GetWorkflowExecutionHistory and
DescribeWorkflowExecution response bytes)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import gzip
import json
import re
import socket
import subprocess
import threading
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import hpack
import nexusrpc
import nexusrpc.handler
import pytest
from google.protobuf import json_format
from temporalio import nexus, workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    GetWorkflowExecutionHistoryRequest,
    RespondNexusTaskCompletedRequest,
    RespondNexusTaskFailedRequest,
    RespondWorkflowTaskCompletedRequest,
    SignalWithStartWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, NexusOperationError
from temporalio.nexus._operation_handlers import WorkflowRunOperationHandler
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import harness

WAIT = 60.0  # seconds: the bound on any one wait in these tests
ENCRYPTED = b"binary/encrypted"
SYSTEM_ENDPOINT = "__temporal_system"
SWS_TYPE = "temporal.api.workflowservice.v1.SignalWithStartWorkflowExecutionRequest"
FAILURE_TYPE = "temporal.api.failure.v1.Failure"
SEARCH_ATTRIBUTE = "CustomKeyword"
WS = "/temporal.api.workflowservice.v1.WorkflowService/"


def new_canary(tag: str) -> str:
    return f"nexus-secret-{tag}-{uuid.uuid4().hex}"


# --- the wire tap: a relay between sealgate and the dev server ------------------------


class WireTap:
    """Relays loopback TCP connections to `upstream_port` and keeps both
    directions of each. Threads; stopped by `stop()`."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sent: list[bytearray] = []  # per connection: sealgate to server
        self.received: list[bytearray] = []  # per connection: server to sealgate
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.closing = threading.Event()
        t = threading.Thread(target=self._accept, name="wiretap-accept", daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            sent, received = bytearray(), bytearray()
            with self.lock:
                self.sent.append(sent)
                self.received.append(received)
                self.sockets += [client, upstream]
            for src, dst, rec in ((client, upstream, sent), (upstream, client, received)):
                t = threading.Thread(target=self._pump, args=(src, dst, rec), name="wiretap-pump", daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, record: bytearray) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    record += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def snapshot(self) -> list[tuple[bytes, bytes]]:
        """(sent, received) per connection so far."""
        with self.lock:
            return [(bytes(s), bytes(r)) for s, r in zip(self.sent, self.received)]

    def requests(self) -> list[tuple[str, bytes]]:
        """Every gRPC request message sealgate sent upstream so far: (path, message)."""
        out: list[tuple[str, bytes]] = []
        for sent, _ in self.snapshot():
            for stream in h2_streams(sent, client=True).values():
                out += [(stream.path, m) for m in stream.messages()]
        return out

    def statuses(self) -> list[tuple[str, str, str]]:
        """(path, grpc-status, grpc-message) of every call the server has answered."""
        out = []
        for sent, received in self.snapshot():
            asked = h2_streams(sent, client=True)
            for sid, answer in h2_streams(received, client=False).items():
                status = answer.field("grpc-status")
                if status is not None and sid in asked:
                    out.append((asked[sid].path, status, unquote(answer.field("grpc-message") or "")))
        return out

    def stop(self) -> None:
        self.closing.set()
        self.listener.close()
        with self.lock:
            sockets = list(self.sockets)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self.threads:
            t.join(timeout=5)


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclasses.dataclass
class H2Stream:
    header_blocks: list[dict[str, str]] = dataclasses.field(default_factory=list)
    body: bytearray = dataclasses.field(default_factory=bytearray)

    @property
    def path(self) -> str:
        return self.field(":path") or "?"

    def field(self, name: str) -> str | None:
        for block in self.header_blocks:
            if name in block:
                return block[name]
        return None

    def messages(self) -> list[bytes]:
        """The length-prefixed gRPC messages in the body (gzip undone)."""
        out, i, body = [], 0, bytes(self.body)
        while i + 5 <= len(body):
            compressed, n = body[i], int.from_bytes(body[i + 1 : i + 5], "big")
            msg = body[i + 5 : i + 5 + n]
            if len(msg) < n:
                break  # still on its way
            out.append(gzip.decompress(msg) if compressed else msg)
            i += 5 + n
        return out


def h2_streams(data: bytes, client: bool) -> dict[int, H2Stream]:
    """One direction of an h2c connection, as streams (in order of appearance)."""
    pos = 0
    if client:
        if len(data) < len(PREFACE):
            return {}  # a connection that has not sent its preface yet
        assert data.startswith(PREFACE), f"not h2c with prior knowledge: {data[:32]!r}"
        pos = len(PREFACE)
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = 1 << 20
    pending: dict[int, bytearray] = {}
    streams: dict[int, H2Stream] = {}
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        ftype, flags = data[pos + 3], data[pos + 4]
        sid = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        if pos + 9 + length > len(data):
            break  # a frame still on its way
        payload = data[pos + 9 : pos + 9 + length]
        pos += 9 + length
        if ftype in (0, 1) and flags & 0x8:  # PADDED
            payload = payload[1 : len(payload) - payload[0]]
        if ftype == 0:  # DATA
            streams.setdefault(sid, H2Stream()).body += payload
        elif ftype in (1, 9):  # HEADERS, CONTINUATION
            if ftype == 1:
                if flags & 0x20:  # PRIORITY
                    payload = payload[5:]
                pending[sid] = bytearray()
            pending[sid] += payload
            if flags & 0x4:  # END_HEADERS
                block = {}
                for k, v in decoder.decode(bytes(pending.pop(sid))):
                    block[k.decode() if isinstance(k, bytes) else k] = v.decode() if isinstance(v, bytes) else v
                streams.setdefault(sid, H2Stream()).header_blocks.append(block)
    return streams


# --- a sealgate per test, in front of the tap ----------------------------------------


@dataclasses.dataclass
class Gateway:
    gate: harness.Sealgate
    tap: WireTap
    admin_port: int
    server: harness.TemporalServer

    @property
    def address(self) -> str:
        return self.gate.address

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.admin_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()


def start_gateway(workdir: Path, server: harness.TemporalServer) -> Gateway:
    tap = WireTap(server.port)
    admin_port = harness.free_port()
    try:
        config = harness.sealgate_config(workdir, harness.generated_codec_section())
        gate = harness.start_sealgate(
            workdir,
            config,
            env={"SEALGATE_ADMIN_LISTEN": f"127.0.0.1:{admin_port}"},
            upstream=f"http://127.0.0.1:{tap.port}",
        )
    except BaseException:
        tap.stop()
        raise
    return Gateway(gate, tap, admin_port, server)


def stop_gateway(gw: Gateway) -> None:
    try:
        code = gw.gate.proc.stop()
        assert code == 0, f"sealgate exited {code}:\n{gw.gate.proc.tail()}"
    finally:
        gw.tap.stop()


METRIC_LINE = re.compile(r"^(\w+)\{([^}]*)\}\s+(\S+)$")


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if m and m.group(1) == name:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            out.append((labels, float(m.group(3))))
    return out


# Codes a call refused or broken by sealgate would end with (sealgate's own,
# or the server's answer to something malformed sealgate forwarded).
REFUSAL_CODES = {"3", "7", "8", "9", "12", "13", "16"}


def assert_gateway_clean(gw: Gateway) -> None:
    """sealgate's own view: no call refused or failed in it, no payload it
    could not encode, no plaintext caught by the tripwire."""
    text = gw.metrics()
    calls = metric_samples(text, "sealgate_calls_total")
    assert calls, f"no sealgate_calls_total in /metrics:\n{text[:2000]}"
    refused = [(l, v) for l, v in calls if l.get("code") in REFUSAL_CODES and v > 0]
    assert not refused, f"calls refused or failed in sealgate: {refused}\nlog:\n{gw.gate.proc.tail(60)}"
    for name, bad in (
        ("sealgate_plaintext_refused_total", lambda l: True),
        ("sealgate_payloads_total", lambda l: l.get("result") == "failed"),
        ("sealgate_unknown_fields_total", lambda l: l.get("action") == "refused"),
    ):
        hits = [(l, v) for l, v in metric_samples(text, name) if bad(l) and v > 0]
        assert not hits, f"{name}: {hits}\nlog:\n{gw.gate.proc.tail(60)}"
    assert encoded_count(text) > 0, "sealgate encoded no payload"
    log = gw.gate.proc.log.read_text(errors="replace")
    for marker in ("call refused", "call failed in sealgate", "ERROR", "panicked"):
        lines = [line for line in log.splitlines() if marker in line]
        assert not lines, f"sealgate logged {marker!r}:\n" + "\n".join(lines[:20])


def encoded_count(metrics: str) -> float:
    return sum(
        v
        for l, v in metric_samples(metrics, "sealgate_payloads_total")
        if l.get("direction") == "encode" and l.get("result") == "encoded"
    )


# --- the dev servers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def legacy_temporal(workdir):
    """A dev server that answers Nexus callers in the legacy failure form."""
    server = harness.start_temporal(
        workdir / "temporal-nexus-legacy",
        dynamic_config={"nexusoperation.useNewFailureWireFormat": "false"},
    )
    yield server
    server.proc.stop()


@pytest.fixture(scope="module")
def system_nexus_temporal(workdir):
    """A dev server that runs a workflow's SignalWithStart as System Nexus."""
    server = harness.start_temporal(
        workdir / "temporal-nexus-system",
        {SEARCH_ATTRIBUTE: "Keyword"},
        dynamic_config={"history.enableSignalWithStartFromWorkflow": "true"},
    )
    yield server
    server.proc.stop()


def create_endpoint(server: harness.TemporalServer, task_queue: str) -> str:
    return harness.create_nexus_endpoint(server, task_queue, "e2e-nexus")


# --- the Nexus service, its handler, and the workflows ---------------------------------

# The cancel handler learns its canary from here (the operation token holds only
# the handler workflow's id, which must not hold a secret itself).
CANCEL_CANARIES: dict[str, str] = {}


@nexusrpc.service
class SecretService:
    fail_operation: nexusrpc.Operation[str, str]
    fail_handler: nexusrpc.Operation[str, str]
    refuse_cancel: nexusrpc.Operation[str, str]


@workflow.defn
class HandlerWorkflow:
    """The workflow behind `refuse_cancel`: runs until terminated."""

    @workflow.run
    async def run(self, canary: str) -> str:
        await workflow.wait_condition(lambda: False)
        return canary


class RefusingCancelHandler(WorkflowRunOperationHandler[str, str]):
    async def cancel(self, ctx: nexusrpc.handler.CancelOperationContext, token: str) -> None:
        wid = nexus.WorkflowHandle[Any].from_token(token).workflow_id
        canary = CANCEL_CANARIES[wid]
        raise nexusrpc.HandlerError(
            f"{canary}-cancel-message", type=nexusrpc.HandlerErrorType.BAD_REQUEST
        ) from ApplicationError(f"{canary}-cancel-cause", f"{canary}-cancel-detail", non_retryable=True)


@nexusrpc.handler.service_handler(service=SecretService)
class SecretServiceHandler:
    @nexusrpc.handler.sync_operation
    async def fail_operation(self, ctx: nexusrpc.handler.StartOperationContext, canary: str) -> str:
        # An operation failure: StartOperationResponse.failure (modern) or
        # .operation_error (legacy).
        raise nexusrpc.OperationError(
            f"{canary}-operation-message", state=nexusrpc.OperationErrorState.FAILED
        ) from ApplicationError(f"{canary}-operation-cause", f"{canary}-operation-detail", non_retryable=True)

    @nexusrpc.handler.sync_operation
    async def fail_handler(self, ctx: nexusrpc.handler.StartOperationContext, canary: str) -> str:
        # A handler error: RespondNexusTaskFailed .failure (modern) or .error (legacy).
        raise ApplicationError(f"{canary}-handler-message", f"{canary}-handler-detail", non_retryable=True)

    @nexusrpc.handler.operation_handler
    def refuse_cancel(self) -> nexusrpc.handler.OperationHandler[str, str]:
        async def start(ctx: nexusrpc.handler.StartOperationContext, canary: str) -> nexus.WorkflowHandle[str]:
            wid = f"nexus-handler-{uuid.uuid4().hex}"
            CANCEL_CANARIES[wid] = canary
            wctx = nexus.WorkflowRunOperationContext._from_start_operation_context(ctx)
            return await wctx.start_workflow(HandlerWorkflow.run, canary, id=wid)

        return RefusingCancelHandler(start)


def error_chain(err: BaseException | None) -> list[dict]:
    out = []
    while err is not None:
        item: dict[str, Any] = {"kind": type(err).__name__, "message": getattr(err, "message", str(err))}
        if isinstance(err, ApplicationError):
            item["type"] = err.type
            item["details"] = [str(d) for d in err.details]
        out.append(item)
        err = err.__cause__
    return out


@workflow.defn
class FailingCallerWorkflow:
    """Calls each named operation with the canary; returns how each failed."""

    @workflow.run
    async def run(self, endpoint: str, operations: list[str], canary: str) -> dict:
        client = workflow.create_nexus_client(service=SecretService, endpoint=endpoint)
        out: dict[str, Any] = {}
        for op in operations:
            try:
                value = await client.execute_operation(op, canary, schedule_to_close_timeout=timedelta(seconds=60))
                out[op] = {"completed": value}
            except NexusOperationError as e:
                out[op] = error_chain(e)
        return out


@workflow.defn
class CancellingCallerWorkflow:
    """Starts `refuse_cancel`, then cancels it, waiting for the cancel request."""

    @workflow.run
    async def run(self, endpoint: str, canary: str) -> dict:
        client = workflow.create_nexus_client(service=SecretService, endpoint=endpoint)
        handle = await client.start_operation(
            "refuse_cancel",
            canary,
            schedule_to_close_timeout=timedelta(seconds=120),
            cancellation_type=workflow.NexusOperationCancellationType.WAIT_REQUESTED,
        )
        handle.cancel()
        try:
            value = await handle
            return {"completed": value}
        except NexusOperationError as e:
            return {"failed": error_chain(e)}


@workflow.defn
class TargetWorkflow:
    def __init__(self) -> None:
        self.signal: str | None = None

    @workflow.run
    async def run(self, arg: str) -> dict:
        await workflow.wait_condition(lambda: self.signal is not None)
        return {"arg": arg, "signal": self.signal, "memo": workflow.memo_value("m", type_hint=str)}

    @workflow.signal
    def sig(self, value: str) -> None:
        self.signal = value


@workflow.defn
class SignalWithStartCallerWorkflow:
    @workflow.run
    async def run(self, target_id: str, task_queue: str, canary: str, sa_value: str) -> dict:
        handle = await workflow.signal_with_start_workflow(
            TargetWorkflow.run,
            f"{canary}-arg",
            id=target_id,
            task_queue=task_queue,
            signal=TargetWorkflow.sig,
            signal_args=f"{canary}-signal",
            memo={"m": f"{canary}-memo"},
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SearchAttributeKey.for_keyword(SEARCH_ATTRIBUTE), sa_value)]
            ),
            static_summary=f"{canary}-summary",
        )
        return {"id": handle.id, "run_id": handle.run_id}


def worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[
            HandlerWorkflow,
            FailingCallerWorkflow,
            CancellingCallerWorkflow,
            TargetWorkflow,
            SignalWithStartCallerWorkflow,
        ],
        nexus_service_handlers=[SecretServiceHandler()],
        # The workflows live in this test module; the sandbox would re-import it.
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


# --- what the server holds, read directly ----------------------------------------------


@dataclasses.dataclass
class Stored:
    events: list  # HistoryEvent
    history_bytes: bytes  # raw GetWorkflowExecutionHistory responses, concatenated
    describe_bytes: bytes

    def of(self, event_type: int) -> list:
        return [e for e in self.events if e.event_type == event_type]


async def stored(server: harness.TemporalServer, workflow_id: str) -> Stored:
    client = await Client.connect(server.address)
    svc = client.workflow_service
    execution = WorkflowExecution(workflow_id=workflow_id)
    events, raw, token = [], b"", b""
    while True:
        resp = await svc.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(namespace="default", execution=execution, next_page_token=token),
            timeout=timedelta(seconds=20),
        )
        raw += resp.SerializeToString()
        events += list(resp.history.events)
        token = resp.next_page_token
        if not token:
            break
    desc = await svc.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(namespace="default", execution=execution), timeout=timedelta(seconds=20)
    )
    return Stored(events, raw, desc.SerializeToString())


def canary_forms(canary: str) -> list[bytes]:
    """The canary as bytes, and as it looks inside base64 (protojson bytes
    fields) at each of the three alignments."""
    raw = canary.encode()
    forms = [raw]
    for k, start in ((0, 0), (1, 2), (2, 3)):
        padded = b"\0" * k + raw
        forms.append(base64.b64encode(padded)[start : len(padded) // 3 * 4])
    return forms


def assert_no_canary(what: str, data: bytes, canary: str) -> None:
    for form in canary_forms(canary):
        at = data.find(form)
        assert at < 0, f"{canary} in clear in {what} (as {form[:16]!r}...): ...{data[max(0, at - 200) : at + 200]!r}..."


def assert_wire_clean(gw: Gateway, canary: str) -> None:
    """Nothing sealgate sent upstream holds the canary, in any message."""
    conns = gw.tap.snapshot()
    assert conns and sum(len(sent) for sent, _ in conns) > 0, "the tap saw no traffic"
    for i, (sent, _) in enumerate(conns):
        assert_no_canary(f"upstream connection {i} (raw bytes)", sent, canary)
    for path, msg in gw.tap.requests():
        assert_no_canary(f"upstream request {path}", msg, canary)
    for sent, _ in conns:
        for stream in h2_streams(sent, client=True).values():
            for block in stream.header_blocks:
                assert_no_canary(f"upstream headers of {stream.path}", repr(block).encode(), canary)


def assert_failure_encoded(f: Failure, where: str, levels: int) -> None:
    """A failure chain as the handler wrote it, or as the server wrapped it:
    every level with text has it moved into encrypted encoded attributes and
    encrypted details; a level without any text may be the server's own
    wrapper (the legacy form adds one for a handler error). `levels` is how
    many levels the handler wrote, all of which must be encoded."""
    encoded = 0
    level = 0
    while True:
        if f.message == "" and not f.HasField("encoded_attributes") and not f.HasField("application_failure_info"):
            assert f.stack_trace == "", f"{where} level {level}: stack trace in clear"
        else:
            assert f.message == "Encoded failure", f"{where} level {level}: message {f.message!r}"
            assert f.stack_trace == "", f"{where} level {level}: stack trace in clear"
            assert f.encoded_attributes.metadata["encoding"] == ENCRYPTED, f"{where} level {level}: {f.encoded_attributes}"
            encoded += 1
        if f.HasField("application_failure_info"):
            for p in f.application_failure_info.details.payloads:
                assert p.metadata["encoding"] == ENCRYPTED, f"{where} level {level}: details {p.metadata}"
        if not f.HasField("cause"):
            break
        f = f.cause
        level += 1
    assert encoded == levels, f"{where}: {encoded} encoded levels, expected {levels}"


async def run_with_worker(gw: Gateway, task_queue: str, body):
    """Runs `body(client)` with a worker on `task_queue`, both through sealgate;
    the whole of it, worker shutdown included, bounded."""

    async def run():
        client = await Client.connect(gw.address)
        async with worker(client, task_queue):
            return await body(client)

    return await asyncio.wait_for(run(), timeout=WAIT * 2)


def read_stored(server: harness.TemporalServer, workflow_id: str) -> Stored:
    return asyncio.run(asyncio.wait_for(stored(server, workflow_id), WAIT))


# --- 1 and 2: failed Nexus operations, modern and legacy wire form ---------------------


@pytest.fixture
def default_gateway(workdir, temporal, request):
    gw = start_gateway(workdir / f"sealgate-{request.node.name}", temporal)
    yield gw
    stop_gateway(gw)


@pytest.fixture
def legacy_gateway(workdir, legacy_temporal, request):
    gw = start_gateway(workdir / f"sealgate-{request.node.name}", legacy_temporal)
    yield gw
    stop_gateway(gw)


OPERATIONS = ["fail_operation", "fail_handler"]


def check_failed_operations(gw: Gateway, legacy: bool) -> None:
    canary = new_canary("fail")
    token = uuid.uuid4().hex[:12]
    tq = f"nexus-{token}"
    endpoint = create_endpoint(gw.server, tq)
    wid = f"nexus-caller-{token}"

    async def body(client: Client) -> dict:
        return await client.execute_workflow(
            FailingCallerWorkflow.run,
            args=[endpoint, OPERATIONS, canary],
            id=wid,
            task_queue=tq,
            execution_timeout=timedelta(seconds=WAIT * 2),
        )

    seen = asyncio.run(run_with_worker(gw, tq, body))

    # The caller saw every message and detail in clear, through sealgate.
    op = seen["fail_operation"]
    assert [c["kind"] for c in op] == ["NexusOperationError", "ApplicationError", "ApplicationError"], op
    assert op[1]["message"] == f"{canary}-operation-message"
    assert op[1]["type"] == "OperationError"
    assert op[2]["message"] == f"{canary}-operation-cause"
    assert op[2]["details"] == [f"{canary}-operation-detail"]
    handler = seen["fail_handler"]
    # (The legacy form gets one more HandlerError level from the server.)
    assert handler[0]["kind"] == "NexusOperationError" and handler[1]["kind"] == "HandlerError", handler
    assert handler[-1]["kind"] == "ApplicationError", handler
    assert handler[-1]["message"] == f"{canary}-handler-message"
    assert handler[-1]["details"] == [f"{canary}-handler-detail"]

    # The server, read directly, holds neither message nor detail.
    s = read_stored(gw.server, wid)
    assert_no_canary("caller history", s.history_bytes, canary)
    assert_no_canary("caller describe", s.describe_bytes, canary)
    for e in s.of(EventType.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED):
        assert_encrypted(e.nexus_operation_scheduled_event_attributes.input, "NexusOperationScheduled.input")
    failed = s.of(EventType.EVENT_TYPE_NEXUS_OPERATION_FAILED)
    assert len(failed) == 2, [EventType.Name(e.event_type) for e in s.events]
    for e in failed:
        f = e.nexus_operation_failed_event_attributes.failure
        # The server's own wrapper ("nexus operation completed unsuccessfully")
        # is not ours to encode; everything the handler wrote below it is.
        assert f.HasField("nexus_operation_execution_failure_info"), f
        assert f.message == "nexus operation completed unsuccessfully", f
        assert f.HasField("cause"), f
        assert_failure_encoded(f.cause, f"NexusOperationFailed {e.event_id}", levels=2)
    completed = s.of(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)[0]
    assert completed.workflow_execution_completed_event_attributes.result.payloads[0].metadata["encoding"] == ENCRYPTED

    # What sealgate sent upstream: no canary anywhere, and the Nexus task
    # answers in the form this server asked for.
    assert_wire_clean(gw, canary)
    answers = nexus_answers(gw)
    assert_wire_form(answers, legacy)
    assert_gateway_clean(gw)


def nexus_answers(gw: Gateway) -> dict[str, list]:
    out: dict[str, list] = {"completed": [], "failed": []}
    for path, msg in gw.tap.requests():
        if path == WS + "RespondNexusTaskCompleted":
            out["completed"].append(RespondNexusTaskCompletedRequest.FromString(msg))
        elif path == WS + "RespondNexusTaskFailed":
            out["failed"].append(RespondNexusTaskFailedRequest.FromString(msg))
    return out


def legacy_details(nf, where: str) -> Failure:
    """A legacy nexus.v1.Failure as sealgate forwarded it: typed, with the
    Temporal Failure in JSON details, payloads encrypted, text encoded."""
    assert nf.metadata.get("type") == FAILURE_TYPE, f"{where}: {nf}"
    assert nf.message == "Encoded failure", f"{where}: message {nf.message!r}"
    assert nf.stack_trace == "", f"{where}: stack trace {nf.stack_trace!r}"
    f = Failure()
    json_format.Parse(nf.details, f)
    f.message = nf.message
    return f


def assert_wire_form(answers: dict[str, list], legacy: bool) -> None:
    completed = [r for r in answers["completed"] if r.response.HasField("start_operation")]
    failed = answers["failed"]
    assert len(completed) == 1 and len(failed) == 1, (completed, failed)
    start = completed[0].response.start_operation
    if legacy:
        assert start.HasField("operation_error") and not start.HasField("failure"), start
        f = legacy_details(start.operation_error.failure, "operation_error")
        assert_failure_encoded(f, "forwarded operation_error", levels=2)
        assert failed[0].HasField("error") and not failed[0].HasField("failure"), failed[0]
        f = legacy_details(failed[0].error.failure, "RespondNexusTaskFailed.error")
        assert_failure_encoded(f, "forwarded handler error", levels=2)
    else:
        assert start.HasField("failure") and not start.HasField("operation_error"), start
        assert_failure_encoded(start.failure, "forwarded StartOperationResponse.failure", levels=2)
        assert failed[0].HasField("failure") and not failed[0].HasField("error"), failed[0]
        assert_failure_encoded(failed[0].failure, "forwarded RespondNexusTaskFailed.failure", levels=2)


def test_failed_operation_modern_form(default_gateway):
    """Default server: the caller supports Temporal Failures in Nexus."""
    check_failed_operations(default_gateway, legacy=False)


def test_failed_operation_legacy_form(legacy_gateway):
    """useNewFailureWireFormat=false: answers are nexus.v1.Failure with the
    Temporal Failure as JSON details; sealgate encodes inside the JSON."""
    check_failed_operations(legacy_gateway, legacy=True)


def test_cancel_refused_legacy_form(default_gateway):
    """A cancel handler that raises: cancel tasks never announce failure
    support, so the answer is RespondNexusTaskFailed.error (legacy form) even
    on a default server. The stored NexusOperationCancelRequestFailed holds
    no canary; the caller sees the handler's message and details."""
    gw = default_gateway
    canary = new_canary("cancel")
    token = uuid.uuid4().hex[:12]
    tq = f"nexus-{token}"
    endpoint = create_endpoint(gw.server, tq)
    wid = f"nexus-cancel-caller-{token}"

    async def body(client: Client) -> dict:
        return await client.execute_workflow(
            CancellingCallerWorkflow.run,
            args=[endpoint, canary],
            id=wid,
            task_queue=tq,
            execution_timeout=timedelta(seconds=WAIT * 2),
        )

    seen = asyncio.run(run_with_worker(gw, tq, body))
    s = read_stored(gw.server, wid)
    started = s.of(EventType.EVENT_TYPE_NEXUS_OPERATION_STARTED)
    assert len(started) == 1, [EventType.Name(e.event_type) for e in s.events]
    handler_wid = started[0].links[0].workflow_event.workflow_id
    try:
        # The caller saw the cancel handler's message and details, through sealgate.
        assert "failed" in seen, seen
        chain = seen["failed"]
        assert chain[0]["kind"] == "NexusOperationError", chain
        assert chain[0]["message"] == "Nexus operation cancellation request failed", chain
        assert {"kind": "HandlerError", "message": f"{canary}-cancel-message"} in chain, chain
        assert chain[-1]["kind"] == "ApplicationError", chain
        assert chain[-1]["message"] == f"{canary}-cancel-cause", chain
        assert chain[-1]["details"] == [f"{canary}-cancel-detail"], chain

        # Stored: the cancel request failure holds no canary, its text encoded.
        assert_no_canary("caller history", s.history_bytes, canary)
        assert_no_canary("caller describe", s.describe_bytes, canary)
        failed = s.of(EventType.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUEST_FAILED)
        assert len(failed) == 1, [EventType.Name(e.event_type) for e in s.events]
        f = failed[0].nexus_operation_cancel_request_failed_event_attributes.failure
        assert f.HasField("nexus_handler_failure_info") and f.nexus_handler_failure_info.type == "BAD_REQUEST", f
        assert_failure_encoded(f, "NexusOperationCancelRequestFailed", levels=2)
        assert b"Encoded failure" in s.history_bytes
        # The handler workflow (the operation) holds the canary as its input, encrypted.
        h = read_stored(gw.server, handler_wid)
        assert_no_canary("handler workflow history", h.history_bytes, canary)
        assert_no_canary("handler workflow describe", h.describe_bytes, canary)
        h_input = h.events[0].workflow_execution_started_event_attributes.input.payloads[0]
        assert h_input.metadata["encoding"] == ENCRYPTED, h_input.metadata

        # Upstream: no canary, and the cancel answer went in the legacy form.
        assert_wire_clean(gw, canary)
        answers = nexus_answers(gw)
        assert len(answers["failed"]) == 1, answers
        refused = answers["failed"][0]
        assert refused.HasField("error") and not refused.HasField("failure"), refused
        assert refused.error.error_type == "BAD_REQUEST", refused.error
        lf = legacy_details(refused.error.failure, "cancel RespondNexusTaskFailed.error")
        assert_failure_encoded(lf, "forwarded cancel failure", levels=2)
        starts = [r for r in answers["completed"] if r.response.start_operation.HasField("async_success")]
        assert len(starts) == 1, answers["completed"]
        assert_gateway_clean(gw)
    finally:
        asyncio.run(asyncio.wait_for(terminate(gw.server, handler_wid), WAIT))


async def terminate(server: harness.TemporalServer, workflow_id: str) -> None:
    client = await Client.connect(server.address)
    try:
        await client.get_workflow_handle(workflow_id).terminate("test over", rpc_timeout=timedelta(seconds=10))
    except Exception:
        pass  # already closed


# --- 3: System Nexus SignalWithStart --------------------------------------------------


@pytest.fixture
def system_gateway(workdir, system_nexus_temporal, request):
    gw = start_gateway(workdir / f"sealgate-{request.node.name}", system_nexus_temporal)
    yield gw
    stop_gateway(gw)


def assert_encrypted(p, where: str) -> None:
    assert p.metadata["encoding"] == ENCRYPTED, f"{where}: {dict(p.metadata)}"


def assert_envelope(p, where: str, target_id: str, sa_value: str) -> SignalWithStartWorkflowExecutionRequest:
    """A System Nexus envelope as the server must see it: outer form readable,
    inner payloads encrypted, search attributes plaintext."""
    assert p.metadata["encoding"] == b"binary/protobuf", f"{where}: {dict(p.metadata)}"
    assert p.metadata["messageType"] == SWS_TYPE.encode(), f"{where}: {dict(p.metadata)}"
    assert p.metadata["__temporal_system_payload"] == b"true", f"{where}: {dict(p.metadata)}"
    req = SignalWithStartWorkflowExecutionRequest.FromString(p.data)
    # The identifiers the server acts on stay readable.
    assert req.workflow_id == target_id and req.signal_name == "sig", f"{where}: {req}"
    assert req.workflow_type.name == "TargetWorkflow" and req.namespace == "default", f"{where}: {req}"
    assert len(req.input.payloads) == 1 and len(req.signal_input.payloads) == 1, f"{where}: {req}"
    assert_encrypted(req.input.payloads[0], f"{where} input")
    assert_encrypted(req.signal_input.payloads[0], f"{where} signal_input")
    assert_encrypted(req.memo.fields["m"], f"{where} memo")
    assert_encrypted(req.user_metadata.summary, f"{where} user_metadata.summary")
    for k, h in req.header.fields.items():
        assert_encrypted(h, f"{where} header {k}")
    sa = req.search_attributes.indexed_fields[SEARCH_ATTRIBUTE]
    assert sa.metadata["encoding"] == b"json/plain" and json.loads(sa.data) == sa_value, f"{where}: {sa}"
    return req


def test_system_nexus_signal_with_start(system_gateway):
    """A workflow's SignalWithStart goes to the server as a System Nexus
    operation (`__temporal_system` endpoint): the outer payload keeps its
    readable form so the server can run it, the payloads inside are
    encrypted, and the server copies them, still encrypted, into the target
    workflow's history; the target worker sees them in clear."""
    gw = system_gateway
    canary = new_canary("sws")
    token = uuid.uuid4().hex[:12]
    tq = f"nexus-sws-{token}"
    wid, target_id = f"sws-caller-{token}", f"sws-target-{token}"
    sa_value = f"visible-{token}"

    async def unsupported() -> str:
        # A dev server that cannot run it refuses the workflow task's command.
        while True:
            for path, status, message in gw.tap.statuses():
                if path == WS + "RespondWorkflowTaskCompleted" and status == "12":
                    return f"RespondWorkflowTaskCompleted: UNIMPLEMENTED {message!r}"
            await asyncio.sleep(0.25)

    async def body(client: Client):
        caller_handle = await client.start_workflow(
            SignalWithStartCallerWorkflow.run,
            args=[target_id, tq, canary, sa_value],
            id=wid,
            task_queue=tq,
            execution_timeout=timedelta(seconds=WAIT),
        )
        result = asyncio.ensure_future(caller_handle.result())
        refused = asyncio.ensure_future(unsupported())
        done, _ = await asyncio.wait([result, refused], return_when=asyncio.FIRST_COMPLETED)
        if refused in done:
            result.cancel()
            await client.get_workflow_handle(wid).terminate("unsupported")
            return ("skip", refused.result())
        refused.cancel()
        caller = await result
        target = await client.get_workflow_handle(target_id).result()
        return caller, target

    outcome = asyncio.run(run_with_worker(gw, tq, body))
    if outcome[0] == "skip":
        pytest.skip(f"dev server {harness.temporal_cli()} does not run a workflow's SignalWithStart: {outcome[1]}")
    caller, target = outcome

    # The caller completed, and the target saw every value in clear.
    assert caller["id"] == target_id and caller["run_id"], caller
    assert target == {"arg": f"{canary}-arg", "signal": f"{canary}-signal", "memo": f"{canary}-memo"}, target

    # What the server holds, read directly: no canary in either workflow.
    s = read_stored(gw.server, wid)
    t = read_stored(gw.server, target_id)
    for name, st in (("caller", s), ("target", t)):
        assert_no_canary(f"{name} history", st.history_bytes, canary)
        assert_no_canary(f"{name} describe", st.describe_bytes, canary)

    # The caller's NexusOperationScheduled: the envelope, readable outside, sealed inside.
    scheduled = s.of(EventType.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED)
    assert len(scheduled) == 1, [EventType.Name(e.event_type) for e in s.events]
    attrs = scheduled[0].nexus_operation_scheduled_event_attributes
    assert attrs.endpoint == SYSTEM_ENDPOINT and attrs.operation == "SignalWithStartWorkflowExecution", attrs
    assert_envelope(attrs.input, "NexusOperationScheduled.input", target_id, sa_value)
    assert len(s.of(EventType.EVENT_TYPE_NEXUS_OPERATION_COMPLETED)) == 1

    # The target's history: the server copied the inner payloads, encrypted.
    started = t.of(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)[0]
    sa = started.workflow_execution_started_event_attributes
    assert len(sa.input.payloads) == 1
    assert_encrypted(sa.input.payloads[0], "WorkflowExecutionStarted.input")
    assert_encrypted(sa.memo.fields["m"], "WorkflowExecutionStarted.memo")
    assert_encrypted(started.user_metadata.summary, "WorkflowExecutionStarted.user_metadata.summary")
    kw = sa.search_attributes.indexed_fields[SEARCH_ATTRIBUTE]
    assert json.loads(kw.data) == sa_value, kw
    signaled = t.of(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    assert len(signaled) == 1, [EventType.Name(e.event_type) for e in t.events]
    sig = signaled[0].workflow_execution_signaled_event_attributes
    assert sig.signal_name == "sig" and len(sig.input.payloads) == 1, sig
    assert_encrypted(sig.input.payloads[0], "WorkflowExecutionSignaled.input")

    # The search attribute stayed plaintext, so the server indexes it.
    async def listed() -> list[str]:
        client = await Client.connect(gw.server.address)
        query = f'{SEARCH_ATTRIBUTE} = "{sa_value}"'
        for _ in range(100):  # visibility is eventually consistent
            ids = [w.id async for w in client.list_workflows(query)]
            if ids:
                return ids
            await asyncio.sleep(0.2)
        return []

    assert asyncio.run(asyncio.wait_for(listed(), WAIT)) == [target_id]

    # Upstream: no canary on the wire, and the command sealgate forwarded
    # carried the envelope in the same form.
    assert_wire_clean(gw, canary)
    commands = [
        c.schedule_nexus_operation_command_attributes
        for path, msg in gw.tap.requests()
        if path == WS + "RespondWorkflowTaskCompleted"
        for c in RespondWorkflowTaskCompletedRequest.FromString(msg).commands
        if c.HasField("schedule_nexus_operation_command_attributes")
    ]
    assert len(commands) == 1, commands
    assert commands[0].endpoint == SYSTEM_ENDPOINT, commands[0]
    assert_envelope(commands[0].input, "ScheduleNexusOperation command input", target_id, sa_value)
    assert_gateway_clean(gw)
