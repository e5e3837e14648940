"""The added p99 at half load, round after round: the load harness's
latency step (benches/load/run) repeated, so that a verdict on the target
does not rest on one 10-second run.

For each message, over h2c or with TLS on both legs (LEGS):

1. Closed-loop throughput of nginx grpc_pass and of sealgate (snappy+AES),
   one run each, as in the harness. Half of it is that proxy's rate.
2. ROUNDS rounds. In each, for each proxy (in alternating order): the
   direct path at the proxy's rate, then the proxy at that rate, 10 s each
   (the harness's `latency()`); after nginx, sealgate at nginx's rate too,
   so the two proxies are also seen under the same traffic. The added p99
   is the proxy's p99 less that of the direct run at its rate in the
   same round.

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
    rounds = int(os.environ.get("ROUNDS", "5"))
    side = load.side_legs("load-tail")
    work, tls, msgs, direct = side.work, side.tls, side.msgs, side.direct
    procs = []
    try:
        nginx, np_, ntp = load.start_nginx(work, side.pki, *side.fake_ports)
        procs.append(nginx)
        gate = harness.start_sealgate(work / "gate", harness.sealgate_config(work / "gate", side.codec),
                                      upstream=side.upstream)
        procs.append(gate.proc)
        nginx_label = "nginx grpc_pass"
        proxies = [(nginx_label, ntp if tls else np_, nginx), ("sealgate, snappy+AES", gate.port, gate.proc)]
        # Also sealgate at nginx's rate, over the same direct run as nginx:
        # the two proxies under the same traffic.
        same = "sealgate at nginx's rate"
        print(f"Added p99 (ms) at half load over the direct path at the same rate, "
              f"{'TLS' if tls else 'h2c'} on both legs, {rounds} rounds; shared cores:\n")
        print("| message | path | calls/s | added p99, median | rounds | direct p99, median |")
        print("|---|---|---|---|---|---|")
        for name in side.names:
            method, data = msgs[name]
            rates = {label: int(load.measured_run(proc.popen.pid, port, method, data, tls).rps / 2)
                     for label, port, proc in proxies}
            rates[same] = rates[nginx_label]
            added: dict[str, list[float]] = {label: [] for label in rates}
            base: dict[str, list[float]] = {label: [] for label in rates}
            for rnd in range(rounds):
                for label, port, _ in (proxies if rnd % 2 == 0 else proxies[::-1]):
                    d = load.latency(direct, method, data, rates[label], tls)[1]
                    runs = [(label, port)] + ([(same, gate.port)] if label == nginx_label else [])
                    for this, at in runs:
                        got = load.latency(at, method, data, rates[this], tls)[1]
                        base[this].append(d)
                        added[this].append(got - d)
            for label in rates:
                v = added[label]
                print(f"| {name} | {label} | {rates[label]} | {statistics.median(v):+.2f} | "
                      f"{' / '.join(f'{x:+.2f}' for x in v)} | {statistics.median(base[label]):.2f} |", flush=True)
        return 0
    finally:
        for p in reversed(procs):
            p.stop()
        side.fake.stop()


if __name__ == "__main__":
    sys.exit(main())
