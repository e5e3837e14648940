"""The load harness: one machine, one workload, every path twice (h2c, then
TLS on both legs), one run.

Paths: direct to a fast fake WorkflowService (examples/fake_upstream.rs);
through nginx grpc_pass; through sealgate with the codec off; through
sealgate with snappy + AES-256-GCM. Each path is measured in clear (h2c on
both legs) and with TLS on both legs: h2load over TLS, nginx terminating TLS
and proxying with grpcs://, sealgate with rustls on its listener and to its
upstream, and the fake upstream serving TLS (rustls) on a second port. Keys
and certificates are made at run time. Workload: StartWorkflowExecution with
a 1 KiB input, RespondActivityTaskCompleted with 1 KiB and 64 KiB results,
and PollWorkflowTaskQueue answered with a 50-event history (encrypted, as
Temporal would store it). For each path and message: h2load throughput
(closed loop, LOAD_ROUNDS rounds, 2 by default, in alternating order of
the paths), CPU seconds per 1,000 requests of the proxy process (from
/proc, also split into user and kernel time), then an open-loop run at half that rate (h2load --rps, per-request
log) for p50/p99/p999, with the direct path run at the same rate just before it as the baseline of the added
latency (on a VM a call's latency depends on the rate itself: idle vCPUs wake slowly), and the proxy's peak RSS; then RSS with 2,000 long
polls held open on a fresh sealgate, in clear and over TLS. With
SEALGATE_BEFORE=<path to an earlier sealgate binary>, that build runs as
one more path (codec on, same config, h2c), for a before/after comparison
in one run. Usage: benches/load/run [--quick]. Results: a Markdown table, the
user/kernel split and a sizing table on stdout and in .work/load/results.md; the request messages
are left in .work/load as .bin (gRPC-framed, for h2load), .pb and .json
(for ghz)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import harness  # noqa: E402

WORK = harness.WORK / "load"
QUICK = "--quick" in sys.argv
# LOAD_REQUESTS sets the closed-loop count: CPU time is read in 10 ms
# ticks, so comparing builds within a few percent wants 100,000 or more.
N = int(os.environ.get("LOAD_REQUESTS", 4000 if QUICK else 20000))
# LOAD_ROUNDS closed-loop runs per cell, in alternating order of the paths
# (a single run put the same build's TLS poll anywhere from 0.85x to 1.04x
# nginx on the shared machine).
ROUNDS = int(os.environ.get("LOAD_ROUNDS", 1 if QUICK else 2))
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


def cpu_split(pids: list[int]) -> tuple[float, float]:
    """CPU seconds of pids so far: (user, kernel)."""
    user = kernel = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11])  # utime
            kernel += int(fields[12])  # stime
        except OSError:
            pass
    return user / TICKS, kernel / TICKS


class Run(NamedTuple):
    """One closed-loop run and the CPU a proxy spent on it."""
    rps: float
    ok: int
    cipher: str
    user: float  # CPU seconds of the proxy's process tree
    kernel: float


def measured_run(pid: int | None, port: int, method: str, data: Path, tls: bool) -> Run:
    """throughput() against port, with the CPU of pid and its children
    (none for the direct path) over that run."""
    pids = tree(pid) if pid else []
    user0, kernel0 = cpu_split(pids)
    rps, ok, cipher = throughput(port, method, data, tls)
    user1, kernel1 = cpu_split(pids)
    return Run(rps, ok, cipher, user1 - user0, kernel1 - kernel0)


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


def h2load(port: int, method: str, data: Path, extra: list[str], tls: bool = False) -> str:
    scheme = "https" if tls else "http"
    cmd = [
        "h2load", f"{scheme}://127.0.0.1:{port}{WS}{method}", "--data", str(data),
        "-H", "content-type: application/grpc", "-H", "te: trailers", *extra,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"h2load failed: {r.stderr}\n{r.stdout}")
    return r.stdout


def throughput(port: int, method: str, data: Path, tls: bool) -> tuple[float, int, str]:
    out = h2load(port, method, data, ["-n", str(N), "-c", "4", "-m", "16", "-t", "1"], tls)
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    ok = int(re.search(r"(\d+) succeeded", out).group(1))
    cipher = "—"
    if tls:
        proto = re.search(r"TLS Protocol: (\S+)", out)
        suite = re.search(r"Cipher: (\S+)", out)
        if proto is None or suite is None:
            raise RuntimeError(f"h2load did not report TLS on a TLS path:\n{out}")
        cipher = f"{proto.group(1)} {suite.group(1)}"
    return rps, ok, cipher


def latency(port: int, method: str, data: Path, rate: int, tls: bool) -> list[float]:
    log = WORK / "latency.log"
    log.unlink(missing_ok=True)
    clients = 4
    h2load(port, method, data, [
        "-c", str(clients), "-t", "1", "--rps", str(max(1, rate // clients)),
        "-D", str(LATENCY_SECONDS), "--log-file", str(log),
    ], tls)
    micros = sorted(int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.strip())
    def q(p: float) -> float:
        return micros[min(len(micros) - 1, int(p * len(micros)))] / 1000.0
    return [q(0.5), q(0.99), q(0.999)]


def held_polls(gate, data: Path, tls: bool) -> tuple[float, float]:
    """RSS (MiB) of a fresh sealgate before and with 2,000 long polls held
    open (20 connections, 100 streams each)."""
    pid = gate.proc.popen.pid
    time.sleep(1)
    idle = rss_kib([pid], "VmRSS") / 1024
    scheme = "https" if tls else "http"
    held = subprocess.Popen(
        ["h2load", f"{scheme}://127.0.0.1:{gate.port}{WS}PollActivityTaskQueue", "--data", str(data),
         "-H", "content-type: application/grpc", "-H", "te: trailers", "-n", "2000", "-c", "20", "-m", "100", "-t", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(5)
    rss = rss_kib([pid], "VmRSS") / 1024
    held.send_signal(signal.SIGINT)
    held.wait(timeout=60)
    return idle, rss


def codec_config() -> str:
    """The measured sealgate's config: snappy + AES-256-GCM with a key made
    by $SEALGATE_BIN's keygen, and no admin listener. The upstream is given
    to each process on its command line / env; the file's is a placeholder."""
    return ('upstream = "127.0.0.1:1"\n' + harness.generated_codec_section()
            + '[telemetry]\nadmin_listen = "off"\n')


def tls_config(pki) -> str:
    """The sections that put TLS on both legs, with `pki`'s certificates."""
    f = pki.files
    return (f'[inbound]\ntls_cert_file = "{f["server.pem"]}"\ntls_key_file = "{f["server-key.pem"]}"\n'
            f'[upstream_options]\nca_file = "{f["ca.pem"]}"\nserver_name = "localhost"\n')


def side_bench(name: str) -> Path:
    """Set-up for the scripts beside this harness (compare.py,
    proxy_only.py, own_core.py, tail.py): 50,000 calls a cell unless LOAD_REQUESTS says, the fake
    upstream built, and a fresh work dir .work/<name>, which becomes WORK."""
    global N, WORK
    if "LOAD_REQUESTS" not in os.environ:
        N = 50000
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "fake_upstream"],
                   cwd=ROOT, check=True)
    work = WORK.parent / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    WORK = work
    return work


class Side(NamedTuple):
    """What the latency scripts beside the harness (own_core.py, tail.py)
    start from: one fake upstream and sealgate's config for the legs they
    measure."""
    work: Path
    pki: object
    tls: bool
    codec: str  # sealgate's config: codec_config(), with tls_config() for TLS
    msgs: dict[str, tuple[str, Path]]
    names: list[str]  # the messages to measure
    fake: object
    fake_ports: tuple[int, int]  # (h2c, TLS)
    direct: int  # the fake's port for these legs
    upstream: str  # sealgate's upstream for these legs


def side_legs(name: str) -> Side:
    """side_bench(name), then the binary (argv[1], else the release build),
    the legs (LEGS: TLS unless h2c), the messages (MESSAGES, comma-separated:
    all four unless set) and a fake upstream."""
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target" / "release" / "sealgate")
    tls = os.environ.get("LEGS", "TLS") == "TLS"
    work = side_bench(name)
    os.environ["SEALGATE_BIN"] = binary
    pki = harness.generate_pki(work / "pki", ["localhost", "127.0.0.1"])
    codec = codec_config() + (tls_config(pki) if tls else "")
    msgs = workload()
    names = os.environ.get("MESSAGES", ",".join(msgs)).split(",")
    fake, fp, ftp = start_fake(work, pki, harness.sealgate_config(work / "keys", codec))
    return Side(work, pki, tls, codec, msgs, names, fake, (fp, ftp), ftp if tls else fp,
                f"https://127.0.0.1:{ftp}" if tls else f"http://127.0.0.1:{fp}")


def start_fake(work: Path, pki, sealed_with: Path | None, hold: int | None = None):
    """The fake WorkflowService, h2c and TLS: (process, port, TLS port). Its
    poll's payloads are sealed with the keys of `sealed_with` (a sealgate
    config), or plaintext without one."""
    f = pki.files
    port, tls_port = harness.free_port(), harness.free_port()
    proc = harness.start("fake", [
        str(ROOT / "target" / "release" / "examples" / "fake_upstream"),
        "--listen", f"127.0.0.1:{port}", "--events", "50",
        *(["--config", str(sealed_with)] if sealed_with else []),
        *(["--hold", str(hold)] if hold else []),
        "--tls-listen", f"127.0.0.1:{tls_port}", "--tls-cert", str(f["server.pem"]), "--tls-key", str(f["server-key.pem"]),
    ], work / "fake")
    ready(proc, port, tls_port)
    return proc, port, tls_port


def start_nginx(work: Path, pki, fake_port: int, fake_tls_port: int):
    """nginx grpc_pass in front of the fake, h2c and TLS: (process, port, TLS port)."""
    port, tls_port = harness.free_port(), harness.free_port()
    conf = work / "nginx.conf"
    conf.write_text(nginx_config(work, pki, port, tls_port, fake_port, fake_tls_port))
    proc = harness.start("nginx", [harness.nginx_bin(), "-c", str(conf), "-p", str(work)], work)
    ready(proc, port, tls_port)
    return proc, port, tls_port


def ready(proc, *ports: int) -> None:
    """Waits for the ports; a process that does not open them is stopped."""
    try:
        for port in ports:
            harness.wait_for_port(port, proc)
    except BaseException:
        proc.stop()
        raise


def nginx_config(work: Path, pki, port: int, tls_port: int, fake_port: int, fake_tls_port: int) -> str:
    f = pki.files
    return f"""
daemon off; worker_processes auto; pid {work}/nginx.pid; error_log {work}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off; client_body_temp_path {work}/nb; proxy_temp_path {work}/np; fastcgi_temp_path {work}/nf;
  uwsgi_temp_path {work}/nu; scgi_temp_path {work}/ns; client_max_body_size 0; grpc_read_timeout 120s;
  # keepalive_requests: nginx closes a connection after 1,000 requests by
  # default, which fails the rest of a long closed-loop run.
  keepalive_requests 100000000; http2_max_concurrent_streams 10000;
  # nginx sends one call per upstream connection at a time (no HTTP/2
  # multiplexing upstream): the harness keeps 64 calls in flight, so up to
  # 64 connections per worker are kept open and reused, never closed after
  # a count; with fewer, nginx would reconnect (and handshake, over TLS)
  # for calls beyond them, which is a configuration cost, not nginx's.
  upstream fake {{ server 127.0.0.1:{fake_port}; keepalive 128; keepalive_requests 100000000; }}
  upstream fake_tls {{ server 127.0.0.1:{fake_tls_port}; keepalive 128; keepalive_requests 100000000; }}
  server {{ listen 127.0.0.1:{port} http2; location / {{ grpc_pass grpc://fake; }} }}
  # TLS on both legs: clients in, and grpcs:// to the upstream, verified.
  server {{
    listen 127.0.0.1:{tls_port} ssl http2;
    # TLS 1.3 on both legs, as rustls negotiates (older nginx defaults stop at 1.2).
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {f['server.pem']}; ssl_certificate_key {f['server-key.pem']};
    location / {{
      grpc_pass grpcs://fake_tls; grpc_ssl_protocols TLSv1.2 TLSv1.3;
      grpc_ssl_verify on; grpc_ssl_trusted_certificate {f['ca.pem']};
      grpc_ssl_name localhost; grpc_ssl_server_name on; grpc_ssl_session_reuse on;
    }}
  }}
}}
"""


def main() -> int:
    for tool in ("h2load", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is missing: apt-get install nghttp2-client nginx")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "sealgate", "--example", "fake_upstream"],
                   cwd=ROOT, check=True)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    os.environ["SEALGATE_BIN"] = str(ROOT / "target" / "release" / "sealgate")
    pki = harness.generate_pki(WORK / "pki", ["localhost", "127.0.0.1"])
    tls_section = tls_config(pki)
    codec = codec_config()
    plain = codec.replace("compression = true", "compression = false").replace("encryption = true", "encryption = false")
    on = harness.sealgate_config(WORK / "on", codec)
    off = harness.sealgate_config(WORK / "off", plain)
    on_tls = harness.sealgate_config(WORK / "on-tls", codec + tls_section)
    off_tls = harness.sealgate_config(WORK / "off-tls", plain + tls_section)
    msgs = workload()
    procs = []
    try:
        fake, fake_port, fake_tls_port = start_fake(WORK, pki, on, hold=30)
        procs.append(fake)
        nginx, nginx_port, nginx_tls_port = start_nginx(WORK, pki, fake_port, fake_tls_port)
        procs.append(nginx)
        up, up_tls = f"http://127.0.0.1:{fake_port}", f"https://127.0.0.1:{fake_tls_port}"
        gate_off = harness.start_sealgate(WORK / "off", off, upstream=up)
        gate_on = harness.start_sealgate(WORK / "on", on, upstream=up)
        gate_off_tls = harness.start_sealgate(WORK / "off-tls", off_tls, upstream=up_tls)
        gate_on_tls = harness.start_sealgate(WORK / "on-tls", on_tls, upstream=up_tls)
        procs += [gate_off, gate_on, gate_off_tls, gate_on_tls]
        before = None
        if os.environ.get("SEALGATE_BEFORE"):
            current = os.environ["SEALGATE_BIN"]
            os.environ["SEALGATE_BIN"] = os.environ["SEALGATE_BEFORE"]
            try:
                before = harness.start_sealgate(WORK / "before", on, upstream=up)
            finally:
                os.environ["SEALGATE_BIN"] = current
            procs.append(before)

        # (legs, label, port, process): the direct path of each kind of legs
        # comes first, as the latency baseline of the paths after it.
        paths = [
            ("h2c", "direct", fake_port, None),
            ("h2c", "nginx grpc_pass", nginx_port, nginx),
            ("h2c", "sealgate, codec off", gate_off.port, gate_off.proc),
            ("h2c", "sealgate, snappy+AES", gate_on.port, gate_on.proc),
        ]
        if before is not None:
            paths.append(("h2c", "sealgate before, snappy+AES", before.port, before.proc))
        paths += [
            ("TLS", "direct", fake_tls_port, None),
            ("TLS", "nginx grpc_pass", nginx_tls_port, nginx),
            ("TLS", "sealgate, codec off", gate_off_tls.port, gate_off_tls.proc),
            ("TLS", "sealgate, snappy+AES", gate_on_tls.port, gate_on_tls.proc),
        ]
        rows = []
        direct_port = {legs: port for legs, label, port, _ in paths if label == "direct"}
        for name, (method, data) in msgs.items():
            # Closed-loop rounds first, alternating the order of the paths
            # so that drift on a shared machine falls on all of them.
            runs: dict[tuple[str, str], list[Run]] = {}
            for rnd in range(ROUNDS):
                for legs, label, port, proc in (paths if rnd % 2 == 0 else paths[::-1]):
                    pid = proc.popen.pid if proc else None
                    runs.setdefault((legs, label), []).append(measured_run(pid, port, method, data, legs == "TLS"))
            for legs, label, port, proc in paths:
                these = runs[(legs, label)]
                ok = sum(r.ok for r in these)
                rps = sum(r.rps * r.ok for r in these) / ok
                user, kernel = sum(r.user for r in these), sum(r.kernel for r in these)
                cipher = these[0].cipher
                pids = tree(proc.popen.pid) if proc else []
                rate = int(rps / 2)
                # The added latency is over the direct path at the same
                # rate, measured just before: the direct path at its own
                # half load runs at a higher rate, where this kind of
                # machine answers faster (its vCPUs stay awake), so that
                # difference would count the rate, not the hop.
                d = latency(direct_port[legs], method, data, rate, legs == "TLS") if proc else None
                lat = latency(port, method, data, rate, legs == "TLS")
                d = d or lat
                rows.append({
                    "message": name, "legs": legs, "path": label, "rps": rps, "ok": ok, "cipher": cipher,
                    "cpu_per_1k": ((user + kernel) / ok * 1000) if proc else None,
                    "user_us": (user / ok * 1e6) if proc else None,
                    "kernel_us": (kernel / ok * 1e6) if proc else None,
                    "p50": lat[0], "p99": lat[1], "p999": lat[2], "direct_p99": d[1],
                    "add_p50": lat[0] - d[0], "add_p99": lat[1] - d[1],
                    "rss_mib": rss_kib(pids, "VmHWM") / 1024 if proc else None,
                })
                print(rows[-1], file=sys.stderr, flush=True)

        # 2,000 long polls held open through a fresh sealgate (codec on), so
        # heap kept from the load above does not count.
        poll = msgs["poll_50_events"][1]
        gate_held = harness.start_sealgate(WORK / "held", on, upstream=up)
        procs.append(gate_held)
        held = held_polls(gate_held, poll, tls=False)
        gate_held_tls = harness.start_sealgate(WORK / "held-tls", on_tls, upstream=up_tls)
        procs.append(gate_held_tls)
        held_tls = held_polls(gate_held_tls, poll, tls=True)

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip() or "unknown"
        # Changes to what the measured binaries are built from.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "src", "examples", "benches/support", "Cargo.toml", "Cargo.lock", "build.rs"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        lines = [
            f"Run {when} on {harness.machine()}; sealgate {commit}{' (uncommitted changes)' if dirty else ''}, "
            f"release build; {ROUNDS} × {N} closed-loop calls per cell (rounds in alternating order), "
            f"{LATENCY_SECONDS} s open-loop latency runs.",
            "",
            "| message | legs | path | req/s | CPU s per 1k req | ÷ nginx | p50 ms | p99 ms | p999 ms | direct p99 ms, same rate | added p50 ms | added p99 ms | peak RSS MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        nginx_cpu = {(r["message"], r["legs"]): r["cpu_per_1k"] for r in rows if r["path"] == "nginx grpc_pass"}
        for r in rows:
            cpu = f"{r['cpu_per_1k']:.4f}" if r["cpu_per_1k"] is not None else "—"
            base = nginx_cpu.get((r["message"], r["legs"]))
            ratio = f"{r['cpu_per_1k'] / base:.2f}" if r["cpu_per_1k"] is not None and base else "—"
            rss = f"{r['rss_mib']:.1f}" if r["rss_mib"] is not None else "—"
            lines.append(
                f"| {r['message']} | {r['legs']} | {r['path']} | {r['rps']:.0f} | {cpu} | {ratio} | {r['p50']:.3f} | "
                f"{r['p99']:.3f} | {r['p999']:.3f} | {r['direct_p99']:.3f} | {r['add_p50']:+.3f} | {r['add_p99']:+.3f} | {rss} |"
            )
        lines += ["", "Where each proxy's CPU goes, µs per call, user + kernel (from /proc, 10 ms ticks):", "",
                  "| message | legs | nginx grpc_pass | sealgate, snappy+AES |", "|---|---|---|---|"]
        split = {(r["message"], r["legs"], r["path"]): r for r in rows if r["user_us"] is not None}
        for name in msgs:
            for legs in ("h2c", "TLS"):
                n, g = split[(name, legs, "nginx grpc_pass")], split[(name, legs, "sealgate, snappy+AES")]
                lines.append(f"| {name} | {legs} | {n['user_us']:.1f} + {n['kernel_us']:.1f} "
                             f"| {g['user_us']:.1f} + {g['kernel_us']:.1f} |")
        lines.append("")
        suites = sorted({(r["path"], r["cipher"]) for r in rows if r["legs"] == "TLS"})
        lines.append("TLS between h2load and each TLS path, as h2load reported it: "
                     + "; ".join(f"{path}: {cipher}" for path, cipher in suites) + ".")
        lines.append("")
        for legs, (idle, rss) in (("h2c", held), ("TLS", held_tls)):
            lines.append(
                f"RSS of a fresh sealgate (snappy+AES, {legs}) with 2,000 long polls held open: {rss:.1f} MiB "
                f"({idle:.1f} MiB before them: {(rss - idle) * 1024 / 2000:.1f} KiB per held poll)"
            )
        lines += ["", "Sizing (sealgate, snappy+AES; cores per 1k calls/s = CPU s per 1k calls):", "",
                  "| message | cores per 1k calls/s, h2c | cores per 1k calls/s, TLS |", "|---|---|---|"]
        ours = {(r["message"], r["legs"]): r["cpu_per_1k"] for r in rows if r["path"] == "sealgate, snappy+AES"}
        for name in msgs:
            lines.append(f"| {name} | {ours[(name, 'h2c')]:.3f} | {ours[(name, 'TLS')]:.3f} |")
        text = "\n".join(lines)
        (WORK / "results.md").write_text(text + "\n")
        print(text)
        return 0
    finally:
        for p in procs:
            (p.proc if hasattr(p, "proc") else p).stop()


if __name__ == "__main__":
    sys.exit(main())
