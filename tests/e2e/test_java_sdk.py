"""The Java SDK (io.temporal:temporal-sdk on grpc-java/Netty) through sealgate.

The Java program in `java/` (built by scripts/setup-java into one jar) runs
a worker and a client; these tests start it against sealgate or the dev
server and read what the server stored directly:

- the full scenario through sealgate: the worker and client see plaintext,
  the server stores only `binary/encrypted` payloads (search attributes
  excepted: plaintext and queryable);
- error semantics (missing workflow, already started, failing and unknown
  queries) are the same through sealgate as directly;
- interop with the Java samples' encryption format
  (samples-java core/src/main/java/io/temporal/samples/encryptedpayloads/
  CryptCodec.java; the jar's SampleFormatCodec writes and reads the same
  bytes), in both directions.

Each test starts the jar with bounded waits (a watchdog inside, a timeout
here) and stops it by PID if it overruns."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

import harness
from stored import payloads, stored
from rpcstatus import decode_status

JAVA = Path(__file__).parent / "java"
JAR = JAVA / "target" / "sealgate-e2e-java-all.jar"
SEARCH_ATTRIBUTE = "CustomKeyword"
FAILURE_MESSAGE = "activity failed on purpose"  # Scenario.FAILURE_MESSAGE
QUERY_FAILURE = "query failed on purpose"  # Errors.QUERY_FAILURE
ENCRYPTED = b"binary/encrypted"
# The samples' key: CryptCodec hard-codes this id and uses its UTF-8 bytes as
# the AES-256 key (getKey(keyId) = new SecretKeySpec(keyId.getBytes(UTF_8))).
SAMPLE_KEY_ID = "test-key-test-key-test-key-test!"
SAMPLE_CIPHER = b"AES/GCM/NoPadding"


# --- running the jar -------------------------------------------------------------


@pytest.fixture(scope="module")
def java_jar() -> Path:
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: the Java SDK tests need Java 17+ and Maven 3.8+")
    r = subprocess.run(
        [str(harness.ROOT / "scripts" / "setup-java")], capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, f"scripts/setup-java failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert JAR.is_file(), f"scripts/setup-java made no {JAR}"
    return JAR


@pytest.fixture(scope="module")
def java_dir(workdir) -> Path:
    d = workdir / "java"
    d.mkdir(parents=True, exist_ok=True)
    return d


class JavaRun:
    """One run of the jar: stdout's last line is its JSON report, stderr goes to a log."""

    def __init__(self, jar: Path, logdir: Path, name: str, *args: str, deadline: int = 150):
        self.name = name
        self.log = logdir / f"{name}.log"
        self.deadline = deadline
        self._err = open(self.log, "wb")
        self.popen = subprocess.Popen(
            ["java", "-jar", str(jar), *args, "--deadline", str(deadline)],
            stdout=subprocess.PIPE,
            stderr=self._err,
            stdin=subprocess.DEVNULL,
        )

    def result(self) -> dict:
        try:
            out, _ = self.popen.communicate(timeout=self.deadline + 30)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"java {self.name} overran; log:\n{self.tail()}")
        finally:
            self._err.close()
        assert self.popen.returncode == 0, f"java {self.name} exited {self.popen.returncode}; log:\n{self.tail()}"
        lines = out.decode().strip().splitlines()
        assert lines, f"java {self.name} printed nothing; log:\n{self.tail()}"
        return json.loads(lines[-1])

    def stop(self) -> None:
        """Kills the run (its PID) if it still runs."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)
        self._err.close()

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def java(jar: Path, logdir: Path, name: str, *args: str, deadline: int = 150) -> dict:
    return JavaRun(jar, logdir, name, *args, deadline=deadline).result()


def token() -> str:
    return uuid.uuid4().hex[:12]


def event_payloads(history) -> list[tuple[str, str, Payload]]:
    """(event attributes name, path, payload) for every payload in a history."""
    out = []
    for i, event in enumerate(history.events):
        attrs = event.WhichOneof("attributes")
        for path, p in payloads(getattr(event, attrs), attrs):
            out.append((attrs, f"events[{i}].{path}", p))
    return out


def create_endpoint(server: harness.TemporalServer, task_queue: str) -> str:
    return harness.create_nexus_endpoint(server, task_queue, "java-nexus")


# --- 1. the scenario ---------------------------------------------------------------


def test_java_worker_sees_plaintext_and_server_stores_ciphertext(java_jar, java_dir, sealgate, temporal):
    t = token()
    task_queue = f"java-scenario-{t}"
    endpoint = create_endpoint(temporal, task_queue)
    out = java(
        java_jar, java_dir, "scenario",
        "scenario", "--address", sealgate.address, "--task-queue", task_queue,
        "--token", t, "--nexus-endpoint", endpoint,
    )
    secret = out["secret"]
    arg = f"{secret}-input"
    result = out["client"]["result"]
    # The worker and the client saw every value in clear.
    assert result == {
        "charged": f"charged {arg}-card",
        "local": f"local saw {arg}-local",
        "child": f"child got {arg}-child-input",
        "failureMessage": FAILURE_MESSAGE,
        "failureType": "ScenarioFailure",
        "failureDetail": f"{arg}-failure-detail",
        "nexus": f"nexus saw {arg}-nexus",
        "signal": f"{secret}-signal",
        "update": f"{secret}-update",
        "memo": f"{secret}-memo",
        "searchAttribute": out["searchAttribute"],
        "waited": "signal and update",
    }, result
    assert out["client"]["query"] == f"waiting with {arg}-query-state"
    assert out["client"]["updateResult"] == f"accepted {secret}-update"
    assert out["worker"] == {
        "activity": f"{arg}-card",
        "localActivity": f"{arg}-local",
        "failingActivity": arg,
        "nexusHandler": f"{arg}-nexus",
    }, out["worker"]

    # The server, read directly, holds none of it.
    wid, child = out["workflowId"], out["childWorkflowId"]
    s = asyncio.run(stored(temporal.address, [wid, child]))
    kinds: dict[str, int] = {}
    for w in (wid, child):
        for what in ("history_bytes", "describe_bytes"):
            assert secret.encode() not in s[w][what], f"{secret} stored in clear in {w} {what}"
        assert FAILURE_MESSAGE.encode() not in s[w]["history_bytes"], "failure message stored in clear"
        assert b"sealgate.e2e." not in s[w]["history_bytes"], "a Java stack trace stored in clear"
        for attrs, path, p in event_payloads(s[w]["history"]):
            if ".search_attributes." in path:
                assert p.metadata["encoding"] == b"json/plain", f"{path}: {p.metadata}"
                continue
            assert p.metadata.get("encoding") == ENCRYPTED, f"{w} {path} stored as {dict(p.metadata)}"
            assert p.metadata.get("encryption-key-id"), f"{w} {path}: no key id"
            kinds[attrs] = kinds.get(attrs, 0) + 1
        for path, p in payloads(s[w]["describe"]):
            if ".search_attributes." not in path:
                assert p.metadata.get("encoding") == ENCRYPTED, f"{w} describe {path}: {dict(p.metadata)}"
    # Every kind of payload the scenario makes was there, encrypted.
    for attrs in (
        "workflow_execution_started_event_attributes",  # input, memo
        "activity_task_scheduled_event_attributes",
        "activity_task_completed_event_attributes",
        "activity_task_failed_event_attributes",  # details, encoded failure text
        "marker_recorded_event_attributes",  # the local activity
        "start_child_workflow_execution_initiated_event_attributes",
        "child_workflow_execution_completed_event_attributes",
        "nexus_operation_scheduled_event_attributes",
        "nexus_operation_completed_event_attributes",
        "workflow_execution_update_accepted_event_attributes",
        "workflow_execution_update_completed_event_attributes",
        "workflow_execution_signaled_event_attributes",
        "workflow_execution_completed_event_attributes",
    ):
        assert kinds.get(attrs), f"no encrypted payload in {attrs}; found {sorted(kinds)}"
    assert b"Encoded failure" in s[wid]["history_bytes"]

    # Search attributes stay plaintext, so the server can index them.
    sa = out["searchAttribute"]
    assert sa.encode() in s[wid]["describe_bytes"]

    async def listed() -> list[str]:
        client = await Client.connect(temporal.address)
        for _ in range(100):  # visibility is eventually consistent: at most ~20 s
            ids = [w.id async for w in client.list_workflows(f'{SEARCH_ATTRIBUTE} = "{sa}"')]
            if ids:
                return ids
            await asyncio.sleep(0.2)
        return []

    assert asyncio.run(listed()) == [wid]


# --- 2. error semantics --------------------------------------------------------------


CASES = (
    "describeMissing", "resultMissing", "rawDescribeMissing",
    "startTwice", "rawStartTwice",
    "queryThrows", "queryUnknown", "rawQueryThrows", "rawQueryUnknown",
)


def without_frames(text: str) -> str:
    """A Java exception's text without its stack frames (the worker's path to
    the handler, direct query task or legacy query, is not sealgate's)."""
    return "\n".join(line for line in text.split("\n") if not line.startswith("\tat ") and not line.startswith("\t..."))


def normalized(report: dict) -> dict:
    """The report's cases with this side's ids, run ids, request ids and
    canary replaced by placeholders, also inside status details, and stack
    frames dropped from status messages."""
    swaps = {
        report["canary"]: "<canary>",
        report["missingId"]: "<missing-id>",
        report["runningId"]: "<running-id>",
        report["runningRunId"]: "<run-id>",
        report["rawStartTwice"]["requestId"]: "<raw-request-id>",
    }
    first_request = report["rawStartTwice"].get("failureStartRequestId")
    if first_request:
        swaps[first_request] = "<first-request-id>"

    def text(s: str) -> str:
        for k, v in swaps.items():
            s = s.replace(k, v)
        return without_frames(s)

    def raw(b64: str) -> str:
        data = base64.b64decode(b64)
        for k, v in swaps.items():
            data = data.replace(k.encode(), v.encode())
        return data.decode("latin-1")

    def status(b64: str) -> dict:
        st = decode_status(base64.b64decode(b64))
        return {
            "code": st.code,
            "message": text(st.message),
            "details": [(url, raw(base64.b64encode(value).decode())) for url, value in st.details],
        }

    def walk(o, key=""):
        if isinstance(o, dict):
            return {k: walk(v, k) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v) for v in o]
        if isinstance(o, str):
            if key == "detailsBin":
                return status(o)
            return raw(o) if key == "value" else text(o)
        return o

    return walk({k: report[k] for k in CASES})


def grpc_of(chain: list[dict]) -> dict:
    found = [c["grpc"] for c in chain if "grpc" in c]
    assert found, f"no gRPC status in {chain}"
    return found[0]


@pytest.fixture(scope="module")
def error_reports(java_jar, java_dir, sealgate, temporal) -> dict:
    """The `errors` subcommand against the dev server and through sealgate (in
    parallel); through sealgate also with a direct observer of the failed query."""
    runs = {
        "direct": JavaRun(java_jar, java_dir, "errors-direct", "errors", "--address", temporal.address, "--token", token()),
        "sealgate": JavaRun(
            java_jar, java_dir, "errors-sealgate", "errors", "--address", sealgate.address,
            "--token", token(), "--observer", temporal.address,
        ),
    }
    try:
        return {side: r.result() for side, r in runs.items()}
    finally:
        for r in runs.values():
            r.stop()


def test_java_client_error_semantics_match_direct(error_reports):
    """A missing workflow (describe, get-result, raw describe), an id already
    running (SDK and raw start), a query whose handler throws and an unknown
    query type (SDK and raw): the same exception classes, gRPC codes,
    descriptions and status details through sealgate as directly."""
    direct, via = error_reports["direct"], error_reports["sealgate"]

    # Directly: what the Java SDK promises.
    def classes(chain):
        return [c["class"] for c in chain]

    for case in ("describeMissing", "resultMissing"):
        assert classes(direct[case]) == ["io.temporal.client.WorkflowNotFoundException", "io.grpc.StatusRuntimeException"], direct[case]
        assert grpc_of(direct[case])["code"] == "NOT_FOUND"
        assert [d["typeUrl"] for d in grpc_of(direct[case])["details"]] == [
            "type.googleapis.com/temporal.api.errordetails.v1.NotFoundFailure"
        ]
    assert grpc_of(direct["rawDescribeMissing"])["code"] == "NOT_FOUND"
    started = direct["startTwice"]
    assert classes(started["chain"])[0] == "io.temporal.client.WorkflowExecutionAlreadyStarted", started
    assert started["runId"] == direct["runningRunId"] and started["workflowType"] == "WaitingWorkflow"
    assert grpc_of(started["chain"])["code"] == "ALREADY_EXISTS"
    raw_start = direct["rawStartTwice"]
    assert grpc_of(raw_start["chain"])["code"] == "ALREADY_EXISTS"
    assert raw_start["failureRunId"] == direct["runningRunId"]
    assert raw_start["failureStartRequestId"] and raw_start["failureStartRequestId"] != raw_start["requestId"]
    for case, needle in (("queryThrows", QUERY_FAILURE), ("queryUnknown", "Unknown query type: noSuchQuery")):
        assert classes(direct[case])[0] == "io.temporal.client.WorkflowQueryException", direct[case]
        status = grpc_of(direct[case])
        assert status["code"] == "INVALID_ARGUMENT" and needle in status["description"], status
        assert [d["typeUrl"] for d in status["details"]] == [
            "type.googleapis.com/temporal.api.errordetails.v1.QueryFailedFailure"
        ]
    assert direct["canary"] in grpc_of(direct["queryThrows"])["description"]

    # Through sealgate: the same, case by case (ids aside).
    d, v = normalized(direct), normalized(via)
    for case in CASES:
        assert v[case] == d[case], (
            f"{case} differs through sealgate:\ndirect:   {json.dumps(d[case])[:3000]}\n"
            f"sealgate: {json.dumps(v[case])[:3000]}"
        )
    # The details really named this side's runs.
    assert via["startTwice"]["runId"] == via["runningRunId"]
    assert via["rawStartTwice"]["failureRunId"] == via["runningRunId"]


def test_java_query_failure_text_does_not_reach_the_server(error_reports):
    """A query handler's exception text (with the run's canary) on a worker
    connected through sealgate, as the server itself answers it to a direct
    caller: it should not be there in clear."""
    out = error_reports["sealgate"]
    status = grpc_of(out["observerQueryThrows"]["chain"])
    assert status["code"] == "INVALID_ARGUMENT", status
    assert out["canary"] not in status["description"], (
        f"the server holds the query failure in clear: {status['description'][:200]!r}"
    )
    assert "sealgate.e2e." not in status["description"], "the server holds the Java stack trace in clear"


# --- 3. the Java samples' encryption format (samples-java CryptCodec) ----------------
#
# The sample's key is its key id's own bytes (`test-key-test-key-test-key-test!`),
# and an encrypting key's id is written into every payload. sealgate therefore
# refuses that key as an active key (it would publish it in every payload it
# writes) and takes it only in decrypt_keys, to read what the sample wrote:
# migrating from the sample to sealgate works; sealgate writing for a worker
# that still runs the sample's codec does not, by design.


def sample_key_entry() -> str:
    material = base64.b64encode(SAMPLE_KEY_ID.encode()).decode()
    return f'[[codec.keys]]\nid = "{SAMPLE_KEY_ID}"\nmaterial = "{material}"\n'


@pytest.fixture(scope="module")
def sample_gate(workdir, temporal):
    """sealgate with a fresh key of its own, reading the samples' key."""
    d = workdir / "sealgate-java-sample"
    fresh = harness.generated_codec_section()
    fresh_id = fresh.split('active_key = "')[1].split('"')[0]
    body = (
        fresh.replace(f'active_key = "{fresh_id}"\n', "").replace("compression = true", "compression = false")
        + sample_key_entry()
        + f'[codec.policies.default]\nactive_key = "{fresh_id}"\ndecrypt_keys = ["{SAMPLE_KEY_ID}"]\n'
    )
    gate = harness.start_sealgate(d, harness.sealgate_config(d, body), upstream=f"http://{temporal.address}")
    gate.fresh_id = fresh_id
    yield gate
    code = gate.proc.stop()
    assert code == 0, f"sealgate exited {code}:\n{gate.proc.tail()}"


def open_sample(p: Payload) -> Payload:
    """Decrypts a payload the sample wrote, independently of both: key = the
    key id's bytes, data = 12-byte nonce ‖ ciphertext ‖ 16-byte tag, no AAD."""
    key_id = p.metadata["encryption-key-id"]
    assert key_id == SAMPLE_KEY_ID.encode(), p.metadata
    data = p.data
    return Payload.FromString(AESGCM(key_id).decrypt(data[:12], data[12:], None))


def test_java_sample_key_never_encrypts_through_sealgate(workdir):
    """As an active key the sample's key is refused at load, naming the entry
    and never the key."""
    d = workdir / "sealgate-java-sample-active"
    body = f'upstream = "http://127.0.0.1:1"\n[codec]\nactive_key = "{SAMPLE_KEY_ID}"\n' + sample_key_entry()
    path = harness.sealgate_config(d, body)
    r = subprocess.run([str(harness.sealgate_bin()), "check-config", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 64, (r.returncode, r.stdout, r.stderr)
    assert "own id as key material" in r.stderr, r.stderr
    assert SAMPLE_KEY_ID not in r.stdout + r.stderr


def test_java_sample_codec_data_reads_through_sealgate(java_jar, java_dir, sample_gate, temporal):
    """Migration: a workflow started directly with the sample-format codec is
    run by a Java worker through sealgate, which reads the sample's payloads
    (its key in decrypt_keys) and writes its own under its fresh key; the
    history reads as plaintext through sealgate, as ciphertext of both
    writers directly."""
    t = token()
    out = java(
        java_jar, java_dir, "interop", "interop",
        "--direct", temporal.address, "--sealgate", sample_gate.address, "--token", t, "--only", "b",
    )
    b = out["b"]
    in_b = f"SECRET{t}-b-input"
    # The worker through sealgate read the sample's input.
    assert b["workerSawActivityInput"] == f"{in_b}-act", b
    # The sample's codec wrote the input and read nothing of sealgate's (its
    # key is sealgate's own now): the result is read through sealgate.
    direct = asyncio.run(stored(temporal.address, [b["workflowId"]]))
    via = asyncio.run(stored(sample_gate.address, [b["workflowId"]]))
    wid = b["workflowId"]
    assert in_b.encode() not in direct[wid]["history_bytes"]
    writers = {}
    for attrs, path, p in event_payloads(direct[wid]["history"]):
        assert p.metadata["encoding"] == ENCRYPTED, f"{path}: {dict(p.metadata)}"
        if p.metadata.get("encryption-cipher") == SAMPLE_CIPHER:
            assert open_sample(p).metadata["encoding"] == b"json/plain"
            writers[attrs] = "sample"
        else:
            assert p.metadata["encryption-key-id"] == sample_gate.fresh_id.encode(), dict(p.metadata)
            writers[attrs] = "sealgate"
    assert writers["workflow_execution_started_event_attributes"] == "sample", writers
    assert writers["workflow_execution_completed_event_attributes"] == "sealgate", writers
    for attrs, path, p in event_payloads(via[wid]["history"]):
        assert p.metadata["encoding"] == b"json/plain", f"through sealgate {path}: {dict(p.metadata)}"
    completed = via[wid]["history"].events[-1].workflow_execution_completed_event_attributes
    assert json.loads(completed.result.payloads[0].data) == f"interop saw {in_b} / echoed {in_b}-act"
