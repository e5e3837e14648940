"""The 50-event poll with and without payloads to decode, against nginx:
how much of sealgate's cost per poll is the proxy and how much the decode.

The fake upstream answers PollWorkflowTaskQueue with the same 50-event
history twice over: once with its payloads sealed (snappy + AES-256-GCM,
as Temporal Cloud would hold them, the load harness's poll) and once in
plaintext (json/plain), which sealgate walks, finds nothing of its own in,
and forwards as received. nginx grpc_pass and sealgate (the harness's
codec config, h2c on both legs) each take the same closed-loop h2load run
(-c 4 -m 16) per round; rounds alternate the order. Prints, per variant,
each proxy's CPU per call split into user and kernel time (from /proc).

Usage: .venv/bin/python benches/load/proxy_only.py [SEALGATE_BINARY]
  env LOAD_REQUESTS (50,000 calls a cell), ROUNDS (2).
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import run as load

harness = load.harness


def measure(work: Path, sealed: bool, binary: str, rounds: int) -> dict[str, tuple[float, float]]:
    """{proxy: (user µs, kernel µs) per call} for one variant of the poll."""
    work.mkdir(parents=True)
    pki = harness.generate_pki(work / "pki", ["localhost", "127.0.0.1"])
    # Set before the config: its key is made by this binary's `keygen` (a
    # fresh checkout has no debug build to fall back on).
    os.environ["SEALGATE_BIN"] = binary
    config = harness.sealgate_config(work / "gate", load.codec_config())
    fake, fp, ftp = load.start_fake(work, pki, config if sealed else None)
    procs = []
    try:
        nginx, np_, _ = load.start_nginx(work, pki, fp, ftp)
        procs.append(nginx)
        gate = harness.start_sealgate(work / "gate-run", config, upstream=f"http://127.0.0.1:{fp}")
        procs.append(gate.proc)
        at = [("nginx", nginx.popen.pid, np_), ("sealgate", gate.proc.popen.pid, gate.port)]
        method, data = load.workload()["poll_50_events"]
        per_call: dict[str, list[tuple[float, float]]] = {}
        for rnd in range(rounds):
            for who, pid, port in (at if rnd % 2 == 0 else at[::-1]):
                r = load.measured_run(pid, port, method, data, False)
                per_call.setdefault(who, []).append((r.user / r.ok * 1e6, r.kernel / r.ok * 1e6))
        return {who: (statistics.mean(u for u, _ in v), statistics.mean(k for _, k in v))
                for who, v in per_call.items()}
    finally:
        for p in reversed(procs):
            p.stop()
        fake.stop()


def main() -> int:
    binary = sys.argv[1] if len(sys.argv) > 1 else str(load.ROOT / "target" / "release" / "sealgate")
    work = load.side_bench("load-proxy-only")
    rounds = int(os.environ.get("ROUNDS", "2"))
    print("| poll payloads | nginx µs per call (user + kernel) | sealgate µs per call (user + kernel) | ÷ nginx |")
    print("|---|---|---|---|")
    for sealed in (False, True):
        m = measure(work / ("sealed" if sealed else "plain"), sealed, binary, rounds)
        (nu, nk), (gu, gk) = m["nginx"], m["sealgate"]
        label = "sealed (snappy + AES-GCM), decoded by sealgate" if sealed else "plaintext, nothing to decode"
        print(f"| {label} | {nu + nk:.1f} ({nu:.1f} + {nk:.1f}) | {gu + gk:.1f} ({gu:.1f} + {gk:.1f}) "
              f"| {(gu + gk) / (nu + nk):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
