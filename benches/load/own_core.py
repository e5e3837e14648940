"""Latency with the proxy on a core of its own: how much of the added p99
at half load that the load harness (benches/load/run) reports is the proxy,
and how much is the proxy sharing the machine's cores with the load
generator and the upstream.

The harness runs h2load, the fake upstream and the proxy on the same
cores. Here, for each message, with TLS on both legs (or h2c, LEGS=h2c):

1. Closed-loop throughput of sealgate (snappy+AES, default threads, on
   every core), as in the harness. Half of it is the rate of step 2.
2. h2load and the fake upstream are moved to CPU 0. Then, at that rate,
   ROUNDS open-loop latency runs (10 s each), the paths in alternating
   order:
   - direct: h2load to the fake;
   - nginx grpc_pass, its worker processes on CPU 1;
   - sealgate with one serving thread (`[proxy] threads = 1`), on CPU 1;
   - sealgate as in step 1 (default threads, CPUs 0 and 1), sharing.
   A path's added p99 is its p99 less the direct path's in the same round.

Needs 2 cores or more (CPUs 0 and 1). Prints a Markdown table.

Usage: .venv/bin/python benches/load/own_core.py [SEALGATE_BINARY]
  env LOAD_REQUESTS (50,000 closed-loop calls), ROUNDS (3), LEGS (TLS),
  MESSAGES (all four, comma-separated).
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import run as load

harness = load.harness


def pin(pid: int, cpus: set[int]) -> None:
    """Moves every thread of `pid` and of its child processes to `cpus`."""
    for p in load.tree(pid):
        for task in Path(f"/proc/{p}/task").iterdir():
            os.sched_setaffinity(int(task.name), cpus)


def main() -> int:
    if len(os.sched_getaffinity(0)) < 2:
        print("own_core.py needs 2 cores or more", file=sys.stderr)
        return 2
    rounds = int(os.environ.get("ROUNDS", "3"))
    side = load.side_legs("load-own-core")
    work, tls, msgs, upstream, codec = side.work, side.tls, side.msgs, side.upstream, side.codec
    fake, (fp, ftp) = side.fake, side.fake_ports
    procs = []
    try:
        nginx, np_, ntp = load.start_nginx(work, side.pki, fp, ftp)
        procs.append(nginx)
        shared = harness.start_sealgate(work / "shared", harness.sealgate_config(work / "shared", codec),
                                        upstream=upstream)
        procs.append(shared.proc)
        own = harness.start_sealgate(work / "own", harness.sealgate_config(
            work / "own", codec + "[proxy]\nthreads = 1\n"), upstream=upstream)
        procs.append(own.proc)
        rates = {}
        for name in side.names:
            method, data = msgs[name]
            rates[name] = int(load.measured_run(shared.proc.popen.pid, shared.port, method, data, tls).rps / 2)
        # From here on h2load (a child of this process) and the fake run
        # on CPU 0, nginx and the one-thread sealgate on CPU 1.
        os.sched_setaffinity(0, {0})
        pin(fake.popen.pid, {0})
        pin(nginx.popen.pid, {1})
        pin(own.proc.popen.pid, {1})
        paths = [("direct", ftp if tls else fp), ("nginx, own core", ntp if tls else np_),
                 ("sealgate, own core", own.port), ("sealgate, sharing", shared.port)]
        print(f"Added p99 (ms) over direct in the same round, {'TLS' if tls else 'h2c'} on both legs, "
              f"{rounds} rounds; h2load and the fake upstream on CPU 0:\n")
        print("| message | calls/s | direct p99 | " + " | ".join(p for p, _ in paths[1:]) + " |")
        print("|---|---|---|" + "---|" * (len(paths) - 1))
        for name in side.names:
            method, data = msgs[name]
            p99: dict[str, list[float]] = {p: [] for p, _ in paths}
            for rnd in range(rounds):
                for label, port in (paths if rnd % 2 == 0 else paths[::-1]):
                    p99[label].append(load.latency(port, method, data, rates[name], tls)[1])
            added = {label: [v - d for v, d in zip(p99[label], p99["direct"])] for label, _ in paths[1:]}
            cells = [f"{statistics.median(v):+.2f} ({' / '.join(f'{x:+.2f}' for x in v)})" for v in added.values()]
            print(f"| {name} | {rates[name]} | {statistics.median(p99['direct']):.2f} | " + " | ".join(cells) + " |",
                  flush=True)
        return 0
    finally:
        for p in reversed(procs):
            p.stop()
        fake.stop()


if __name__ == "__main__":
    sys.exit(main())
