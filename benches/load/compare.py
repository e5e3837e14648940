"""Two sealgate builds side by side with nginx: CPU per call, h2c and TLS on
both legs, alternating rounds. For "did this change help?", where the full
harness (run.py) answers "where do we stand?".

Usage: .venv/bin/python benches/load/compare.py NEW_BINARY OLD_BINARY
  env LOAD_REQUESTS (50,000 calls a cell), ROUNDS (2), ONLY (messages,
  comma-separated: start_1k, activity_1k, activity_64k, poll_50_events).

Same configs, workload and measurement as run.py (h2load -c 4 -m 16, the
proxy's CPU seconds from /proc); rounds alternate the order of the three
proxies so drift on a shared machine falls on all of them. Prints one
Markdown row per message and legs: CPU s per 1,000 calls, each build ÷
nginx, and new ÷ old.
"""

from __future__ import annotations

import os
import statistics
import sys

import run as load

harness = load.harness


def main() -> int:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    builds = {"new": sys.argv[1], "old": sys.argv[2]}
    work = load.side_bench("load-compare")
    os.environ["SEALGATE_BIN"] = builds["new"]
    pki = harness.generate_pki(work / "pki", ["localhost", "127.0.0.1"])
    codec = load.codec_config()
    clear = harness.sealgate_config(work / "h2c", codec)
    tls = harness.sealgate_config(work / "tls", codec + load.tls_config(pki))
    msgs = load.workload()
    fake, fp, ftp = load.start_fake(work, pki, clear)
    procs = []
    try:
        nginx, np_, ntp = load.start_nginx(work, pki, fp, ftp)
        procs.append(nginx)
        # (pid, port) of each proxy, per legs.
        at = {("nginx", False): (nginx.popen.pid, np_), ("nginx", True): (nginx.popen.pid, ntp)}
        for label, binary in builds.items():
            os.environ["SEALGATE_BIN"] = binary
            for on_tls, config, upstream in ((False, clear, f"http://127.0.0.1:{fp}"),
                                             (True, tls, f"https://127.0.0.1:{ftp}")):
                g = harness.start_sealgate(work / f"{label}-{'tls' if on_tls else 'h2c'}", config, upstream=upstream)
                procs.append(g.proc)
                at[(label, on_tls)] = (g.proc.popen.pid, g.port)
        print("| message | legs | nginx | new (÷ nginx) | old (÷ nginx) | new ÷ old |")
        print("|---|---|---|---|---|---|")
        only = os.environ.get("ONLY", "start_1k,activity_1k,activity_64k,poll_50_events").split(",")
        for name in only:
            method, data = msgs[name]
            for on_tls in (False, True):
                cpu: dict[str, list[float]] = {}
                for rnd in range(int(os.environ.get("ROUNDS", "2"))):
                    order = ("nginx", "new", "old") if rnd % 2 == 0 else ("old", "new", "nginx")
                    for who in order:
                        pid, port = at[(who, on_tls)]
                        r = load.measured_run(pid, port, method, data, on_tls)
                        cpu.setdefault(who, []).append((r.user + r.kernel) / r.ok * 1000)
                m = {who: statistics.mean(v) for who, v in cpu.items()}
                print(f"| {name} | {'TLS' if on_tls else 'h2c'} | {m['nginx']:.4f} "
                      f"| {m['new']:.4f} ({m['new'] / m['nginx']:.2f}×) "
                      f"| {m['old']:.4f} ({m['old'] / m['nginx']:.2f}×) | {m['new'] / m['old']:.2f} |", flush=True)
    finally:
        for p in reversed(procs):
            p.stop()
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
