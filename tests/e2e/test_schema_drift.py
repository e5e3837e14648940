"""The schema drift gate: does sealgate's embedded Temporal API cover what the
SDKs and the server speak?

scripts/schema-sources writes the Temporal API of the Python SDK (.venv), the
TypeScript SDK (@temporalio/proto in tests/e2e/ts) and the running dev server
(gRPC server reflection) as FileDescriptorSet files; `sealgate schema diff FILE
--json` compares each with the embedded schema. A source fails the gate when it
has a request-side payload path the embedded schema lacks (sealgate would send
that payload in plaintext, so it refuses the call) or a WorkflowService /
OperatorService RPC it does not know. Response-side gaps are warnings. Run with
-s for a summary line per source."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import harness

SCRIPT = harness.ROOT / "scripts" / "schema-sources"
GATED_SERVICES = (
    "temporal.api.workflowservice.v1.WorkflowService/",
    "temporal.api.operatorservice.v1.OperatorService/",
)
KEYS = ("added_rpcs", "removed_rpcs", "request_gaps", "response_gaps", "removed_paths", "retyped")


# Drift the gate knows about and accepts, per source, with the reason. The
# gate fails on anything else, and on an entry here that no longer occurs
# (so the list cannot go stale).
KNOWN_DRIFT = {
    # The Go SDK v1.51.0 (go.temporal.io/api v1.64.3) speaks a newer API than
    # any crate ships (temporalio-protos 0.10.2 is the newest): three new
    # OperatorService RPCs, which sealgate refuses as unknown methods until
    # the API is loaded with [schema] descriptor_set (test_go_sdk.py runs Go
    # workers that way; they are refused by the embedded schema).
    "go-sdk": {
        "added_rpcs": {
            "temporal.api.operatorservice.v1.OperatorService/DescribeNamespaceRestore",
            "temporal.api.operatorservice.v1.OperatorService/RestoreNamespace",
            "temporal.api.operatorservice.v1.OperatorService/SoftDeleteNamespace",
        },
    },
}


class SchemaDriftWarning(UserWarning):
    """A source has response-side payload paths the embedded schema lacks."""


def schema_sources(outdir: Path, *args: str) -> dict[str, dict]:
    """Runs scripts/schema-sources; returns its sources.json entries by name
    (a source it could not make has an "error", one it skipped a "skipped")."""
    r = subprocess.run(
        [sys.executable, str(SCRIPT), str(outdir), *args], capture_output=True, text=True, timeout=120
    )
    manifest_path = outdir / "sources.json"
    assert r.returncode in (0, 1) and manifest_path.exists(), (
        f"scripts/schema-sources exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    )
    manifest = json.loads(manifest_path.read_text())
    return {s["name"]: s for s in manifest["sources"]}


def schema_diff(fds: Path) -> tuple[int, dict]:
    binary = harness.sealgate_bin()
    assert binary.exists(), f"{binary} is missing: run `cargo build` first"
    r = subprocess.run([str(binary), "schema", "diff", str(fds), "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode in (0, 1), f"`sealgate schema diff {fds.name} --json` exited {r.returncode}:\n{r.stderr}"
    try:
        out = json.loads(r.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"`sealgate schema diff --json` printed no JSON object ({e}):\n{r.stdout}\n{r.stderr}")
    missing = [k for k in (*KEYS, "embedded", "file") if k not in out]
    assert not missing, f"`sealgate schema diff --json` lacks {missing}: {sorted(out)}"
    return r.returncode, out


def gate(entry: dict, outdir: Path) -> None:
    """Diffs one source's file against the embedded schema; fails on the gaps
    that matter, warns on the response-side ones, prints a summary."""
    name = entry["name"]
    if "skipped" in entry:
        pytest.skip(f"{name}: {entry['skipped']}")
    assert "error" not in entry, f"{name}: {entry['error']}"
    code, diff = schema_diff(outdir / entry["file"])

    known = KNOWN_DRIFT.get(name, {})
    stale = {k: sorted(v - set(diff[k])) for k, v in known.items() if v - set(diff[k])}
    assert not stale, f"{name}: KNOWN_DRIFT lists drift that no longer occurs, remove it: {stale}"
    for k, v in known.items():
        diff[k] = [x for x in diff[k] if x not in v]
        for x in sorted(v):
            print(f"  known {k[:-1]} (accepted, see KNOWN_DRIFT): {x}")
    gated_rpcs = [r for r in diff["added_rpcs"] if r.startswith(GATED_SERVICES)]
    other_rpcs = [r for r in diff["added_rpcs"] if not r.startswith(GATED_SERVICES)]
    embedded, file = diff["embedded"], diff["file"]
    counts = ", ".join(f"{len(diff[k])} {k}" for k in KEYS)
    methods = ", ".join(f"{svc.rsplit('.', 1)[1]} {n}" for svc, n in entry["methods"].items())
    print(
        f"\n[schema drift] {name}: {entry['source']}; {entry['files']} files, {entry['messages']} messages, "
        f"methods: {methods}\n"
        f"  vs embedded {embedded.get('api', embedded['source'])} ({embedded['digest']}), "
        f"file digest {file['digest']}: exit {code}; {counts}"
    )
    for k in ("request_gaps", "response_gaps", "retyped"):
        for item in diff[k]:
            print(f"  {k[:-1]}: {item}")
    for r in diff["added_rpcs"]:
        print(f"  added rpc: {r}")

    if diff["response_gaps"]:
        warnings.warn(
            SchemaDriftWarning(
                f"{name}: {len(diff['response_gaps'])} response-side payload path(s) sealgate's schema lacks "
                f"(sealgate would not decode payloads there): {', '.join(diff['response_gaps'])}"
            )
        )
    if other_rpcs:
        warnings.warn(SchemaDriftWarning(f"{name}: RPCs outside the gated services that sealgate lacks: {other_rpcs}"))
    refused = diff.get("refused_fields", [])
    for item in refused:
        print(f"  request field refused by default: {item}")
    if refused:
        warnings.warn(
            SchemaDriftWarning(
                f"{name}: {len(refused)} request field(s) sealgate's schema lacks; under the strict default "
                f"a client sending one is refused until [schema] descriptor_set loads this API: {', '.join(refused)}"
            )
        )

    problems = []
    if diff["request_gaps"]:
        problems.append("request-side payload paths sealgate's schema lacks (it would refuse these calls):\n    "
                        + "\n    ".join(diff["request_gaps"]))
    if gated_rpcs:
        problems.append("RPCs sealgate's schema lacks:\n    " + "\n    ".join(gated_rpcs))
    assert not problems, (
        f"{name} ({entry['source']}) has drifted from sealgate's embedded schema "
        f"({embedded.get('api', embedded['source'])}):\n  " + "\n  ".join(problems)
        + "\nupdate the embedded Temporal API, or load a newer one with [schema] descriptor_set"
    )
    if code == 1:
        # The command's own verdict is stricter than the gate (an added RPC of
        # another service): say so rather than hide it.
        print(f"  note: `sealgate schema diff` exits 1 for {name}: {other_rpcs or 'see above'}")


@pytest.fixture(scope="module")
def sdk_sources(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    out = tmp_path_factory.mktemp("schema-sources")
    return out, schema_sources(out, "--only", "python,ts")


@pytest.mark.parametrize("name", ["python-temporalio", "ts-temporalio-proto"])
def test_sdk_schema_drift(sdk_sources, name):
    out, entries = sdk_sources
    gate(entries[name], out)


def test_dev_server_schema_drift(temporal, tmp_path_factory):
    out = tmp_path_factory.mktemp("schema-sources-server")
    entries = schema_sources(out, "--only", "server", "--server", temporal.address)
    gate(entries["dev-server"], out)


def test_go_sdk_schema_drift(tmp_path):
    """The Go SDK's API (go.temporal.io/api, as compiled into the Go e2e
    program), written by `sealgate-go-e2e protoset`."""
    r = subprocess.run([str(harness.ROOT / "scripts" / "setup-go")], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"scripts/setup-go failed:\n{r.stdout}\n{r.stderr}"
    binary = r.stdout.strip().splitlines()[-1]
    fds = tmp_path / "go-sdk.fds"
    made = subprocess.run([binary, "protoset", str(fds)], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    from google.protobuf import descriptor_pb2

    files = descriptor_pb2.FileDescriptorSet.FromString(fds.read_bytes()).file
    entry = {
        "name": "go-sdk", "file": fds.name, "source": "go.temporal.io/sdk (sealgate-go-e2e protoset)",
        "files": len(files), "messages": sum(len(f.message_type) for f in files),
        "methods": {
            f"{f.package}.{svc.name}": len(svc.method)
            for f in files for svc in f.service
            if svc.name in ("WorkflowService", "OperatorService")
        },
    }
    gate(entry, tmp_path)


def test_gate_catches_drift(sdk_sources, tmp_path):
    """The gate has teeth: a Payload field on a request, one on a response and
    an RPC that sealgate's schema lacks, added to the Python SDK's set."""
    from google.protobuf import descriptor_pb2

    out, entries = sdk_sources
    entry = entries["python-temporalio"]
    assert "error" not in entry, entry["error"]
    fds = descriptor_pb2.FileDescriptorSet.FromString((out / entry["file"]).read_bytes())
    ws = "temporal.api.workflowservice.v1"
    for f in fds.file:
        if f.package != ws:
            continue
        for m in f.message_type:
            if m.name in ("StartWorkflowExecutionRequest", "StartWorkflowExecutionResponse"):
                m.field.add(name="drift_probe", number=9999, label=1, type=11,
                            type_name=".temporal.api.common.v1.Payload", json_name="driftProbe")
        for svc in f.service:
            if svc.name == "WorkflowService":
                svc.method.add(name="DriftProbe", input_type=f".{ws}.StartWorkflowExecutionRequest",
                               output_type=f".{ws}.StartWorkflowExecutionResponse")
    drifted = tmp_path / "drifted.fds"
    drifted.write_bytes(fds.SerializeToString())

    code, diff = schema_diff(drifted)
    assert code == 1, diff
    assert f"{ws}.StartWorkflowExecutionRequest.drift_probe" in diff["request_gaps"], diff
    assert f"{ws}.StartWorkflowExecutionResponse.drift_probe" in diff["response_gaps"], diff
    assert f"{ws}.WorkflowService/DriftProbe" in diff["added_rpcs"], diff
    with pytest.raises(AssertionError, match="drift_probe"), warnings.catch_warnings(record=True):
        gate({**entry, "file": drifted.name}, tmp_path)

    # Not a descriptor set at all: exit 64.
    garbage = tmp_path / "garbage.fds"
    garbage.write_bytes(b"\xff not a descriptor set")
    r = subprocess.run([str(harness.sealgate_bin()), "schema", "diff", str(garbage), "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 64, (r.returncode, r.stdout, r.stderr)
