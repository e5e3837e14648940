"""The added p99 at half load, round after round: the load harness's
latency step (benches/load/run) repeated, so that a verdict on the target
does not rest on one 10-second run.

For each message, over h2c or with TLS on both legs (LEGS):

1. Closed-loop throughput of nginx grpc_pass and of sealgate (snappy+AES),
   one run each, as in the harness. Half of it is that proxy's rate.
2. ROUNDS rounds. In each, for each proxy (in alternating order): the
   direct path at the proxy's rate, then the proxy at that rate, 10 s each
   (the harness's `latency()`). The added p99 is the proxy's p99 less the
   direct path's just before it.

Nothing is pinned: h2load, the fake upstream and the proxy share the
cores, as in the harness (own_core.py separates them). Prints a Markdown
table: each proxy's rate, the median added p99 and each round's.

Usage: .venv/bin/python benches/load/tail.py [SEALGATE_BINARY]
  env LOAD_REQUESTS (50,000 closed-loop calls), ROUNDS (5), LEGS (TLS),
  MESSAGES (all four, comma-separated).
"""

from __future__ import annotations

import os
import statistics
import sys

import run as load

harness = load.harness


def main() -> int:
    binary = sys.argv[1] if len(sys.argv) > 1 else str(load.ROOT / "target" / "release" / "sealgate")
    rounds = int(os.environ.get("ROUNDS", "5"))
    tls = os.environ.get("LEGS", "TLS") == "TLS"
    work = load.side_bench("load-tail")
    os.environ["SEALGATE_BIN"] = binary
    pki = harness.generate_pki(work / "pki", ["localhost", "127.0.0.1"])
    codec = load.codec_config() + (load.tls_config(pki) if tls else "")
    msgs = load.workload()
    names = os.environ.get("MESSAGES", ",".join(msgs)).split(",")
    fake, fp, ftp = load.start_fake(work, pki, harness.sealgate_config(work / "keys", codec))
    procs = []
    try:
        nginx, np_, ntp = load.start_nginx(work, pki, fp, ftp)
        procs.append(nginx)
        gate = harness.start_sealgate(work / "gate", harness.sealgate_config(work / "gate", codec),
                                      upstream=f"https://127.0.0.1:{ftp}" if tls else f"http://127.0.0.1:{fp}")
        procs.append(gate.proc)
        direct = ftp if tls else fp
        proxies = [("nginx grpc_pass", ntp if tls else np_, nginx), ("sealgate, snappy+AES", gate.port, gate.proc)]
        print(f"Added p99 (ms) at half load over the direct path at the same rate, "
              f"{'TLS' if tls else 'h2c'} on both legs, {rounds} rounds; shared cores:\n")
        print("| message | path | calls/s | added p99, median | rounds | direct p99, median |")
        print("|---|---|---|---|---|---|")
        for name in names:
            method, data = msgs[name]
            rates = {label: int(load.measured_run(proc.popen.pid, port, method, data, tls).rps / 2)
                     for label, port, proc in proxies}
            added: dict[str, list[float]] = {label: [] for label, _, _ in proxies}
            base: dict[str, list[float]] = {label: [] for label, _, _ in proxies}
            for rnd in range(rounds):
                for label, port, _ in (proxies if rnd % 2 == 0 else proxies[::-1]):
                    d = load.latency(direct, method, data, rates[label], tls)[1]
                    p = load.latency(port, method, data, rates[label], tls)[1]
                    base[label].append(d)
                    added[label].append(p - d)
            for label, _, _ in proxies:
                v = added[label]
                print(f"| {name} | {label} | {rates[label]} | {statistics.median(v):+.2f} | "
                      f"{' / '.join(f'{x:+.2f}' for x in v)} | {statistics.median(base[label]):.2f} |", flush=True)
        return 0
    finally:
        for p in reversed(procs):
            p.stop()
        fake.stop()


if __name__ == "__main__":
    sys.exit(main())
