"""grpcurl and ghz through sealgate's gRPC server reflection, with no proto
files: sealgate answers reflection from the Temporal API it embeds, so the
tools users reach for first need nothing but the address.

The tools are pinned and installed by scripts/setup-tools (`go install`
from the Go module proxy into .work/go/bin, cached there). ghz runs the
load harness's request messages (benches/load/run.py writes them; here
its own `workload()` writes them into the test's directory) against
sealgate in front of the harness's fake upstream (examples/fake_upstream),
as BENCHMARKS.md's commands do, and against sealgate in front of the real
dev server."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shlex
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

import harness

WS = "temporal.api.workflowservice.v1.WorkflowService"
OS = "temporal.api.operatorservice.v1.OperatorService"
BENCHMARKS = harness.ROOT / "BENCHMARKS.md"
# A bounded ghz run: requests, per-call timeout, and the subprocess's own limit.
GHZ_TIMEOUT = 180


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tools() -> Path:
    """The pinned ghz and grpcurl, installed (or found) by scripts/setup-tools."""
    r = subprocess.run(
        [str(harness.ROOT / "scripts" / "setup-tools")], capture_output=True, text=True, timeout=1500
    )
    assert r.returncode == 0, f"scripts/setup-tools failed:\n{r.stderr[-4000:]}"
    bin_dir = Path(r.stdout.strip().splitlines()[-1])
    for tool in ("ghz", "grpcurl"):
        assert (bin_dir / tool).is_file(), f"scripts/setup-tools left no {tool} in {bin_dir}"
    return bin_dir


@pytest.fixture(scope="module")
def load_data(tmp_path_factory) -> Path:
    """The load harness's request messages (.pb raw protobuf for -B, .json
    protojson for -D), written by the harness's own code."""
    spec = importlib.util.spec_from_file_location("load_run", harness.ROOT / "benches" / "load" / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    run.WORK = tmp_path_factory.mktemp("load")
    run.workload()
    for name in ("start_1k", "activity_1k", "activity_64k", "poll_50_events"):
        assert (run.WORK / f"{name}.pb").is_file() and (run.WORK / f"{name}.json").is_file(), name
    return run.WORK


@pytest.fixture(scope="module")
def fake_gate(workdir):
    """sealgate in front of the load harness's fake WorkflowService, which
    answers every call (the poll with a 50-event history encrypted with
    sealgate's key) and has no reflection of its own."""
    d = workdir / "tools-fake"
    # fake_upstream reads the codec keys from the same file; it wants an upstream key.
    config = harness.sealgate_config(d, 'upstream = "127.0.0.1:1"\n' + harness.generated_codec_section())
    binary = harness.sealgate_bin().parent / "examples" / "fake_upstream"
    assert binary.is_file(), f"{binary} is missing: scripts/test builds it (cargo build --examples)"
    port = harness.free_port()
    fake = harness.start(
        "fake_upstream",
        [str(binary), "--listen", f"127.0.0.1:{port}", "--config", str(config), "--events", "50", "--hold", "5"],
        d,
    )
    gate = None
    try:
        harness.wait_for_port(port, fake, timeout=30)
        gate = harness.start_sealgate(d, config, upstream=f"http://127.0.0.1:{port}")
        yield {"gate": gate.address, "fake": f"127.0.0.1:{port}"}
    finally:
        code = gate.proc.stop() if gate else 0
        fake.stop()
    assert code == 0, f"sealgate (fake upstream) exited {code}:\n{gate.proc.tail()}"


# --- grpcurl -------------------------------------------------------------------------


def grpcurl(tools: Path, address: str, *args: str, data: str | None = None) -> subprocess.CompletedProcess:
    cmd = [str(tools / "grpcurl"), "-plaintext", "-max-time", "20", "-connect-timeout", "10"]
    if data is not None:
        cmd += ["-d", "@"]
    return subprocess.run([*cmd, address, *args], input=data, capture_output=True, text=True, timeout=60)


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, f"{r.args}: exit {r.returncode}\n{r.stderr[-3000:]}"
    return r.stdout


def without_comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.strip().startswith("//")]


def test_grpcurl_list(tools, temporal, sealgate):
    """`grpcurl list` names Temporal's two public services (and health);
    `list SERVICE` gives the same methods as the dev server's own reflection."""
    services = ok(grpcurl(tools, sealgate.address, "list")).split()
    for name in (WS, OS, "grpc.health.v1.Health"):
        assert name in services, f"`grpcurl list` through sealgate: {services}"
    for service, method in ((WS, "StartWorkflowExecution"), (OS, "AddSearchAttributes")):
        via = ok(grpcurl(tools, sealgate.address, "list", service)).split()
        assert f"{service}.{method}" in via, via
        direct = ok(grpcurl(tools, temporal.address, "list", service)).split()
        assert sorted(via) == sorted(direct), (
            f"{service}: only through sealgate {sorted(set(via) - set(direct))}, "
            f"only direct {sorted(set(direct) - set(via))}"
        )


def test_grpcurl_describe_service_and_messages(tools, temporal, sealgate):
    """`grpcurl describe` of the service and of messages: the same
    definitions as the dev server's reflection (comments aside)."""
    service = ok(grpcurl(tools, sealgate.address, "describe", WS))
    assert f"{WS} is a service:" in service, service[:500]
    assert (
        "rpc StartWorkflowExecution ( .temporal.api.workflowservice.v1.StartWorkflowExecutionRequest ) "
        "returns ( .temporal.api.workflowservice.v1.StartWorkflowExecutionResponse );" in service
    ), service[:2000]
    # The signatures; the dev server's also carry options (HTTP annotations), sealgate's set does not.
    rpcs = lambda text: sorted(re.findall(r"^\s*(rpc \w+ \( .*? \) returns \( .*? \))", text, re.M))  # noqa: E731
    direct = ok(grpcurl(tools, temporal.address, "describe", WS))
    assert len(rpcs(service)) > 50 and rpcs(service) == rpcs(direct), (
        f"only through sealgate: {sorted(set(rpcs(service)) - set(rpcs(direct)))}\n"
        f"only direct: {sorted(set(rpcs(direct)) - set(rpcs(service)))}"
    )

    message = ok(grpcurl(tools, sealgate.address, "describe", "temporal.api.workflowservice.v1.StartWorkflowExecutionRequest"))
    assert "message StartWorkflowExecutionRequest {" in message, message
    assert ".temporal.api.common.v1.Payloads input = 5;" in message, message
    for symbol in (
        "temporal.api.workflowservice.v1.StartWorkflowExecutionRequest",
        "temporal.api.common.v1.Payload",
        "temporal.api.history.v1.HistoryEvent",
    ):
        via = ok(grpcurl(tools, sealgate.address, "describe", symbol))
        direct = ok(grpcurl(tools, temporal.address, "describe", symbol))
        assert without_comments(via) == without_comments(direct), f"{symbol}:\nsealgate:\n{via}\ndirect:\n{direct}"

    missing = grpcurl(tools, sealgate.address, "describe", "temporal.api.nope.v1.Nothing")
    assert missing.returncode != 0 and "Symbol not found" in missing.stderr, missing.stderr


def test_grpcurl_calls(tools, temporal, sealgate):
    """GetSystemInfo and DescribeNamespace through sealgate, with
    reflection's types turning JSON into the request and the response back."""
    info = {a: json.loads(ok(grpcurl(tools, a, f"{WS}/GetSystemInfo"))) for a in (sealgate.address, temporal.address)}
    assert info[sealgate.address]["serverVersion"] == info[temporal.address]["serverVersion"], info
    assert info[sealgate.address]["capabilities"] == info[temporal.address]["capabilities"], info

    ns = {
        a: json.loads(ok(grpcurl(tools, a, f"{WS}/DescribeNamespace", data='{"namespace": "default"}')))
        for a in (sealgate.address, temporal.address)
    }
    assert ns[sealgate.address]["namespaceInfo"]["name"] == "default", ns[sealgate.address]
    assert ns[sealgate.address]["namespaceInfo"]["id"] == ns[temporal.address]["namespaceInfo"]["id"]

    health = json.loads(ok(grpcurl(tools, sealgate.address, "grpc.health.v1.Health/Check")))
    assert health == {"status": "SERVING"}, health


def test_grpcurl_start_with_json_payload_is_stored_encrypted(tools, temporal, sealgate):
    """StartWorkflowExecution from protojson with a json/plain input: read
    back through sealgate it is the same payload; read from the dev server
    it is ciphertext (binary/encrypted, no trace of the plaintext)."""
    wid = f"grpcurl-{uuid.uuid4().hex[:10]}"
    secret = f"GRPCURL{uuid.uuid4().hex[:12]}"
    plain = json.dumps({"order": secret, "qty": 3}).encode()
    payload = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": base64.b64encode(plain).decode()}
    start = {
        "namespace": "default",
        "workflowId": wid,
        "workflowType": {"name": "Anything"},
        "taskQueue": {"name": f"tq-{wid}"},
        "requestId": str(uuid.uuid4()),
        "identity": "sealgate-e2e-grpcurl",
        "input": {"payloads": [payload]},
    }
    started = json.loads(ok(grpcurl(tools, sealgate.address, f"{WS}/StartWorkflowExecution", data=json.dumps(start))))
    assert started.get("runId"), started
    history_req = json.dumps({"namespace": "default", "execution": {"workflowId": wid, "runId": started["runId"]}})
    try:
        def first_event(address: str) -> dict:
            h = json.loads(ok(grpcurl(tools, address, f"{WS}/GetWorkflowExecutionHistory", data=history_req)))
            event = h["history"]["events"][0]
            assert event["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", event
            return event

        via = first_event(sealgate.address)["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
        assert via == [payload], f"through sealgate: {via}"

        raw = first_event(temporal.address)
        stored = raw["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
        assert len(stored) == 1, stored
        meta = {k: base64.b64decode(v) for k, v in stored[0]["metadata"].items()}
        assert meta.get("encoding") == b"binary/encrypted", f"stored: {meta}"
        assert meta.get("encryption-key-id"), f"stored: {meta}"
        assert secret.encode() not in base64.b64decode(stored[0]["data"])
        assert secret not in json.dumps(raw)
    finally:
        grpcurl(
            tools, sealgate.address, f"{WS}/TerminateWorkflowExecution",
            data=json.dumps({"namespace": "default", "workflowExecution": {"workflowId": wid}, "reason": "test done"}),
        )


# --- ghz -----------------------------------------------------------------------------


def ghz(tools: Path, address: str, call: str, data_flag: str, data: Path, n: int, c: int,
        connections: int = 1, extra: tuple[str, ...] = ()) -> dict:
    """A bounded ghz run (count, per-call and connect timeouts, a process
    limit); its JSON report."""
    cmd = [
        str(tools / "ghz"), "--insecure", "--call", call, data_flag, str(data),
        "-n", str(n), "-c", str(c), "--connections", str(connections),
        "-t", "20s", "--connect-timeout", "10s", "-O", "json", *extra, address,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=GHZ_TIMEOUT)
    assert r.returncode == 0, f"{shlex.join(cmd)}: exit {r.returncode}\n{r.stderr[-3000:]}\n{r.stdout[-2000:]}"
    report = json.loads(r.stdout)
    report["_cmd"] = shlex.join(cmd)
    return report


def assert_no_errors(report: dict, n: int) -> None:
    codes = report.get("statusCodeDistribution") or {}
    errors = report.get("errorDistribution") or {}
    assert report["count"] == n and codes == {"OK": n} and not errors, (
        f"{report['_cmd']}\ncount {report['count']}, status codes {codes}, errors {errors}"
    )


def benchmarks_ghz_commands() -> list[dict]:
    """The ghz commands in BENCHMARKS.md that send one of the load
    harness's messages (`.work/load/NAME.pb` or `.json`): call, data flag,
    message file name and concurrency."""
    text = BENCHMARKS.read_text()
    commands = []
    for block in re.findall(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S):
        for cmd in re.split(r"\n(?=\S)", block.replace("\\\n", " ")):
            words = shlex.split(cmd, comments=True)
            if not words or Path(words[0]).name != "ghz":
                continue
            flags = {}
            for i, w in enumerate(words[:-1]):
                flags.setdefault(w, words[i + 1])
            data = next(((f, flags[f]) for f in ("-B", "--binary-file", "-D", "--data-file") if f in flags), None)
            if "--call" not in flags or data is None or ".work/load/" not in data[1]:
                continue
            commands.append({
                "call": flags["--call"],
                "data_flag": data[0],
                "file": Path(data[1]).name,
                "c": int(flags.get("-c", flags.get("--concurrency", "50"))),
                "n": int(flags.get("-n", flags.get("--total", "200"))),
                "text": " ".join(words),
            })
    return commands


def test_benchmarks_ghz_commands_through_reflection(tools, fake_gate, load_data):
    """BENCHMARKS.md's ghz commands, against sealgate in front of the
    harness's fake upstream as there, but with no --protoset (sealgate's
    reflection describes the call) and a bounded request count: every call
    succeeds."""
    commands = benchmarks_ghz_commands()
    assert commands, "no ghz command with a .work/load/ message in BENCHMARKS.md"
    for cmd in commands:
        data = load_data / cmd["file"]
        assert data.is_file(), f"BENCHMARKS.md's `{cmd['text']}` names {cmd['file']}, which the harness does not write"
        n = min(cmd["n"], 10 * cmd["c"], 1000)
        report = ghz(tools, fake_gate["gate"], cmd["call"], cmd["data_flag"], data, n, cmd["c"], connections=2)
        assert_no_errors(report, n)


def test_ghz_sealgate_protoset_as_documented(tools, fake_gate, load_data, tmp_path):
    """The documented alternative: `sealgate protoset FILE`, then ghz
    --protoset FILE; works directly against the fake upstream (which has no
    reflection) and through sealgate."""
    protoset = tmp_path / "temporal.protoset"
    r = subprocess.run([str(harness.sealgate_bin()), "protoset", str(protoset)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and protoset.stat().st_size > 0, r.stderr
    for address in (fake_gate["fake"], fake_gate["gate"]):
        report = ghz(tools, address, f"{WS}/StartWorkflowExecution", "-B", load_data / "start_1k.pb", 100, 4,
                     connections=2, extra=("--protoset", str(protoset)))
        assert_no_errors(report, 100)


@pytest.mark.parametrize(
    "name, call, data_flag",
    [
        ("start_1k", "StartWorkflowExecution", "-B"),
        ("activity_1k", "RespondActivityTaskCompleted", "-D"),
        ("activity_64k", "RespondActivityTaskCompleted", "-B"),
        ("poll_50_events", "PollWorkflowTaskQueue", "-D"),
    ],
)
def test_ghz_short_run_fake_upstream(tools, fake_gate, load_data, name, call, data_flag):
    """The harness's four messages, 200 calls each on 2 connections: 0
    errors (the poll's 50-event history is decrypted on every call)."""
    data = load_data / f"{name}{'.pb' if data_flag == '-B' else '.json'}"
    report = ghz(tools, fake_gate["gate"], f"{WS}/{call}", data_flag, data, 200, 4, connections=2)
    assert_no_errors(report, 200)


def test_ghz_short_run_real_temporal(tools, temporal, sealgate, load_data):
    """Against the dev server through sealgate: the harness's 1 KiB start
    (one workflow id and request id, so after the first call Temporal
    answers with the same run), 200 calls on 2 connections, 0 errors. Its
    64 KiB activity completion carries a made-up task token, which Temporal
    rejects: the same status for every call through sealgate as direct."""
    start = ghz(tools, sealgate.address, f"{WS}/StartWorkflowExecution", "-B", load_data / "start_1k.pb", 200, 4,
                connections=2)
    try:
        assert_no_errors(start, 200)
    finally:
        grpcurl(
            tools, sealgate.address, f"{WS}/TerminateWorkflowExecution",
            data=json.dumps({"namespace": "default", "workflowExecution": {"workflowId": "order-1"}, "reason": "test done"}),
        )

    seen = {}
    for side, address in (("direct", temporal.address), ("sealgate", sealgate.address)):
        report = ghz(tools, address, f"{WS}/RespondActivityTaskCompleted", "-B", load_data / "activity_64k.pb", 40, 4,
                     connections=2)
        seen[side] = (report["count"], report.get("statusCodeDistribution"), report.get("errorDistribution"))
    assert seen["direct"][1] and "OK" not in seen["direct"][1], f"dev server accepted a made-up task token: {seen}"
    assert seen["sealgate"] == seen["direct"], f"direct: {seen['direct']}\nsealgate: {seen['sealgate']}"


# What grpc-go itself reports when a call meets a connection the server is
# rotating (a call started on one it has just sent GOAWAY on, or one that
# closed under it): the dev server's rotation, not sealgate's.
ROTATION_RACE = ("the connection is draining", "received prior goaway", "transport is closing")


def upstream_counters(admin_port: int) -> tuple[float, float]:
    """sealgate's upstream connections made and calls sent again, from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as r:
        text = r.read().decode()

    def total(name: str, **labels: str) -> float:
        out = 0.0
        for line in text.splitlines():
            m = re.match(rf"^{name}\{{([^}}]*)\}}\s+(\S+)$", line)
            if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
                out += float(m.group(2))
        return out

    return total("sealgate_upstream_connects_total", result="ok"), total("sealgate_upstream_retries_total")


def test_ghz_through_upstream_connection_rotation(tools, workdir):
    """Temporal's frontend closes every client connection after
    `frontend.keepAliveMaxConnectionAge` (5 min by default, here 5 s):
    GOAWAY, then a grace period for the calls in flight. Through sealgate,
    whose upstream connections rotate that way, a grpc-go client (ghz) sees
    no error at all: a call the upstream refused unprocessed is sent again.

    Straight at the server, the same run is the control: it shows the
    rotation and what it costs a client with no gateway. grpc-go there can
    lose a handful of calls to races of its own with the rotation (see
    ROTATION_RACE); those are counted and reported, and any other error
    fails the test."""
    d = workdir / "tools-rotation"
    server = harness.start_temporal(d / "temporal", dynamic_config={
        "frontend.keepAliveMaxConnectionAge": '"5s"',
        "frontend.keepAliveMaxConnectionAgeGrace": '"30s"',
        # ghz is faster than the dev server's default rate limits.
        "frontend.rps": "1000000",
        "frontend.namespaceRPS": "1000000",
    })
    gate = None
    admin_port = harness.free_port()
    try:
        gate = harness.start_sealgate(
            d / "sealgate", harness.sealgate_config(d / "sealgate", harness.generated_codec_section()),
            env={"SEALGATE_ADMIN_LISTEN": f"127.0.0.1:{admin_port}"},
            upstream=f"http://{server.address}",
        )
        # The admin listener may come up just after the gRPC one.
        harness.wait_for_port(admin_port, gate.proc, timeout=30)
        seen = {}
        upstream = {}
        for side, address in (("direct", server.address), ("sealgate", gate.address)):
            before = upstream_counters(admin_port)
            cmd = [
                str(tools / "ghz"), "--insecure", "--call", f"{WS}/DescribeNamespace", "-d", '{"namespace": "default"}',
                "-z", "12s", "-c", "50", "--connections", "2", "-t", "20s", "--connect-timeout", "10s",
                "-O", "json", address,
            ]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=GHZ_TIMEOUT)
            assert r.returncode == 0, f"{shlex.join(cmd)}: {r.stderr[-2000:]}"
            report = json.loads(r.stdout)
            # ghz -z cancels the calls in flight when the time is up and closes
            # its connections: those errors are its own. "the client
            # connection is closing" is grpc-go's ErrClientConnClosing, which
            # only a client's own ClientConn.Close() produces (seen once in
            # 93,346 direct calls).
            own = ("use of closed network connection", "context canceled", "the client connection is closing")
            errors = {
                e: n for e, n in (report.get("errorDistribution") or {}).items()
                if not any(o in e.lower() for o in own)
            }
            seen[side] = (report["count"], errors)
            after = upstream_counters(admin_port)
            upstream[side] = (after[0] - before[0], after[1] - before[1])
        direct_count, direct_errors = seen["direct"]
        other = {e: n for e, n in direct_errors.items() if not any(r in e for r in ROTATION_RACE)}
        assert not other, f"straight at the dev server, errors other than the rotation race: {seen['direct']}"
        print(
            f"rotation: direct {sum(direct_errors.values())} of {direct_count} calls lost to the rotation race; "
            f"through sealgate {sum(seen['sealgate'][1].values())} of {seen['sealgate'][0]}, "
            f"{upstream['sealgate'][0]:.0f} upstream connections made, {upstream['sealgate'][1]:.0f} calls sent again"
        )
        # The sealgate run saw the rotation: with a 5 s age over 12 s, its
        # upstream connections were replaced at least once.
        assert upstream["sealgate"][0] >= 2, f"no rotation while ghz ran through sealgate: {upstream}"
        assert not seen["sealgate"][1], (
            f"through sealgate, {sum(seen['sealgate'][1].values())} of {seen['sealgate'][0]} calls failed "
            f"while the upstream rotated its connections (direct: {sum(direct_errors.values())} of "
            f"{direct_count}, all the rotation race): {seen['sealgate'][1]}"
        )
    finally:
        code = gate.proc.stop() if gate else 0
        server.proc.stop()
    assert code == 0, f"sealgate exited {code}:\n{gate.proc.tail()}"
