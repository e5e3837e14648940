"""The load harness: one machine, one workload, four paths, one run.

Paths: direct to a fast fake WorkflowService (examples/fake_upstream.rs);
through nginx grpc_pass; through sealgate with the codec off; through
sealgate with snappy + AES-256-GCM. Workload: StartWorkflowExecution with a
1 KiB input, RespondActivityTaskCompleted with 1 KiB and 64 KiB results, and
PollWorkflowTaskQueue answered with a 50-event history (encrypted, as
Temporal would store it). For each path and message: h2load throughput
(closed loop), CPU seconds per 1,000 requests of the proxy process (from
/proc), then an open-loop run at half that rate (h2load --rps, per-request
log) for p50/p99/p999, and the proxy's peak RSS; then RSS with 2,000 long
polls held open. With SEALGATE_BEFORE=<path to an earlier sealgate
binary>, that build runs as a fifth path (codec on, same config), for a
before/after comparison in one run. Usage: benches/load/run [--quick]. Results: a Markdown
table on stdout and in .work/load/results.md; the request messages are left
in .work/load as .bin (gRPC-framed, for h2load), .pb and .json (for ghz)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import harness  # noqa: E402

WORK = harness.WORK / "load"
QUICK = "--quick" in sys.argv
# LOAD_REQUESTS sets the closed-loop count: CPU time is read in 10 ms
# ticks, so comparing builds within a few percent wants 100,000 or more.
N = int(os.environ.get("LOAD_REQUESTS", 4000 if QUICK else 20000))
LATENCY_SECONDS = 3 if QUICK else 10
TICKS = os.sysconf("SC_CLK_TCK")
WS = "/temporal.api.workflowservice.v1.WorkflowService/"


def framed(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def workload() -> dict[str, tuple[str, Path]]:
    from temporalio.api.common.v1 import Payload, Payloads, WorkflowType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import (
        PollWorkflowTaskQueueRequest,
        RespondActivityTaskCompletedRequest,
        StartWorkflowExecutionRequest,
    )

    unit = b'{"sku":"SKU-0001234","qty":3,"price":19.99,"note":"order for customer c-42"},'

    def payloads(size: int) -> Payloads:
        data = (unit * (size // len(unit) + 1))[:size]
        return Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=data)])

    msgs = {
        "start_1k": ("StartWorkflowExecution", StartWorkflowExecutionRequest(
            namespace="default", workflow_id="order-1", workflow_type=WorkflowType(name="ProcessOrder"),
            task_queue=TaskQueue(name="orders"), input=payloads(1024), identity="bench",
            request_id="6f1c0a8e-7d0b-4c1e-9b9e-0d7f3c2a1b00")),
        "activity_1k": ("RespondActivityTaskCompleted", RespondActivityTaskCompletedRequest(
            namespace="default", task_token=b"\x07" * 120, result=payloads(1024), identity="bench")),
        "activity_64k": ("RespondActivityTaskCompleted", RespondActivityTaskCompletedRequest(
            namespace="default", task_token=b"\x07" * 120, result=payloads(64 * 1024), identity="bench")),
        "poll_50_events": ("PollWorkflowTaskQueue", PollWorkflowTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name="orders"), identity="bench")),
    }
    from google.protobuf import json_format

    out = {}
    for name, (method, msg) in msgs.items():
        p = WORK / f"{name}.bin"
        p.write_bytes(framed(msg.SerializeToString()))
        # The same message for ghz: raw protobuf (-B) and protojson (-D).
        (WORK / f"{name}.pb").write_bytes(msg.SerializeToString())
        (WORK / f"{name}.json").write_text(json_format.MessageToJson(msg))
        out[name] = (method, p)
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / TICKS


def tree(pid: int) -> list[int]:
    """pid and its children (nginx workers)."""
    r = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [pid] + [int(x) for x in r.stdout.split()]


def rss_kib(pids: list[int], field: str) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def h2load(port: int, method: str, data: Path, extra: list[str]) -> str:
    cmd = [
        "h2load", f"http://127.0.0.1:{port}{WS}{method}", "--data", str(data),
        "-H", "content-type: application/grpc", "-H", "te: trailers", *extra,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"h2load failed: {r.stderr}\n{r.stdout}")
    return r.stdout


def throughput(port: int, method: str, data: Path) -> tuple[float, int]:
    out = h2load(port, method, data, ["-n", str(N), "-c", "4", "-m", "16", "-t", "1"])
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    ok = int(re.search(r"(\d+) succeeded", out).group(1))
    return rps, ok


def latency(port: int, method: str, data: Path, rate: int) -> list[float]:
    log = WORK / "latency.log"
    log.unlink(missing_ok=True)
    clients = 4
    h2load(port, method, data, [
        "-c", str(clients), "-t", "1", "--rps", str(max(1, rate // clients)),
        "-D", str(LATENCY_SECONDS), "--log-file", str(log),
    ])
    micros = sorted(int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.strip())
    def q(p: float) -> float:
        return micros[min(len(micros) - 1, int(p * len(micros)))] / 1000.0
    return [q(0.5), q(0.99), q(0.999)]


def main() -> int:
    for tool in ("h2load", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is missing: apt-get install nghttp2-client nginx")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "sealgate", "--example", "fake_upstream"],
                   cwd=ROOT, check=True)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    os.environ["SEALGATE_BIN"] = str(ROOT / "target" / "release" / "sealgate")
    # The upstream is given to each process on its command line / env.
    codec = 'upstream = "127.0.0.1:1"\n' + harness.generated_codec_section()
    on = harness.sealgate_config(WORK / "on", codec + "[telemetry]\nadmin_listen = \"off\"\n")
    off = harness.sealgate_config(WORK / "off", codec.replace("compression = true", "compression = false")
                                  .replace("encryption = true", "encryption = false") + "[telemetry]\nadmin_listen = \"off\"\n")
    msgs = workload()
    procs = []
    try:
        fake_port = harness.free_port()
        fake = harness.start("fake", [str(ROOT / "target" / "release" / "examples" / "fake_upstream"),
                                      "--listen", f"127.0.0.1:{fake_port}", "--config", str(on),
                                      "--events", "50", "--hold", "30"], WORK / "fake")
        procs.append(fake)
        harness.wait_for_port(fake_port, fake)
        nginx_port = harness.free_port()
        conf = WORK / "nginx.conf"
        conf.write_text(f"""
daemon off; worker_processes auto; pid {WORK}/nginx.pid; error_log {WORK}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off; client_body_temp_path {WORK}/nb; proxy_temp_path {WORK}/np; fastcgi_temp_path {WORK}/nf;
  uwsgi_temp_path {WORK}/nu; scgi_temp_path {WORK}/ns; client_max_body_size 0; grpc_read_timeout 120s;
  upstream fake {{ server 127.0.0.1:{fake_port}; keepalive 16; }}
  # keepalive_requests: nginx closes a connection after 1,000 requests by
  # default, which fails the rest of a long closed-loop run.
  server {{ listen 127.0.0.1:{nginx_port} http2; http2_max_concurrent_streams 10000; keepalive_requests 100000000;
           location / {{ grpc_pass grpc://fake; }} }}
}}
""")
        nginx = harness.start("nginx", [harness.nginx_bin(), "-c", str(conf), "-p", str(WORK)], WORK)
        procs.append(nginx)
        harness.wait_for_port(nginx_port, nginx)
        gate_off = harness.start_sealgate(WORK / "off", off, upstream=f"http://127.0.0.1:{fake_port}")
        gate_on = harness.start_sealgate(WORK / "on", on, upstream=f"http://127.0.0.1:{fake_port}")
        procs += [gate_off, gate_on]
        before = None
        if os.environ.get("SEALGATE_BEFORE"):
            current = os.environ["SEALGATE_BIN"]
            os.environ["SEALGATE_BIN"] = os.environ["SEALGATE_BEFORE"]
            try:
                before = harness.start_sealgate(WORK / "before", on, upstream=f"http://127.0.0.1:{fake_port}")
            finally:
                os.environ["SEALGATE_BIN"] = current
            procs.append(before)

        paths = [
            ("direct", fake_port, None),
            ("nginx grpc_pass", nginx_port, nginx),
            ("sealgate, codec off", gate_off.port, gate_off.proc),
            ("sealgate, snappy+AES", gate_on.port, gate_on.proc),
        ]
        if before is not None:
            paths.append(("sealgate before, snappy+AES", before.port, before.proc))
        rows = []
        direct_latency = {}
        for name, (method, data) in msgs.items():
            for label, port, proc in paths:
                pids = tree(proc.popen.pid) if proc else []
                cpu0 = cpu_seconds(pids)
                rps, ok = throughput(port, method, data)
                cpu = cpu_seconds(pids) - cpu0
                lat = latency(port, method, data, int(rps / 2))
                if label == "direct":
                    direct_latency[name] = lat
                d = direct_latency[name]
                rows.append({
                    "message": name, "path": label, "rps": rps, "ok": ok,
                    "cpu_per_1k": (cpu / ok * 1000) if proc else None,
                    "p50": lat[0], "p99": lat[1], "p999": lat[2],
                    "add_p50": lat[0] - d[0], "add_p99": lat[1] - d[1],
                    "rss_mib": rss_kib(pids, "VmHWM") / 1024 if proc else None,
                })
                print(rows[-1], file=sys.stderr, flush=True)

        # 2,000 long polls held open through a fresh sealgate (codec on), so
        # heap kept from the load above does not count.
        gate_held = harness.start_sealgate(WORK / "held", on, upstream=f"http://127.0.0.1:{fake_port}")
        procs.append(gate_held)
        held = subprocess.Popen(
            ["h2load", f"http://127.0.0.1:{gate_held.port}{WS}PollActivityTaskQueue", "--data", str(msgs["poll_50_events"][1]),
             "-H", "content-type: application/grpc", "-H", "te: trailers", "-n", "2000", "-c", "20", "-m", "100", "-t", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(5)
        held_rss = rss_kib([gate_held.proc.popen.pid], "VmRSS") / 1024
        held.send_signal(signal.SIGINT)
        held.wait(timeout=60)

        lines = [
            "| message | path | req/s | CPU s per 1k req | p50 ms | p99 ms | p999 ms | added p50 ms | added p99 ms | peak RSS MiB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            cpu = f"{r['cpu_per_1k']:.3f}" if r["cpu_per_1k"] is not None else "—"
            rss = f"{r['rss_mib']:.1f}" if r["rss_mib"] is not None else "—"
            lines.append(
                f"| {r['message']} | {r['path']} | {r['rps']:.0f} | {cpu} | {r['p50']:.3f} | {r['p99']:.3f} | "
                f"{r['p999']:.3f} | {r['add_p50']:+.3f} | {r['add_p99']:+.3f} | {rss} |"
            )
        lines.append("")
        lines.append(f"RSS of sealgate (snappy+AES) with 2,000 long polls held open: {held_rss:.1f} MiB")
        text = "\n".join(lines)
        (WORK / "results.md").write_text(text + "\n")
        print(text)
        return 0
    finally:
        for p in procs:
            (p.proc if hasattr(p, "proc") else p).stop()


if __name__ == "__main__":
    sys.exit(main())
