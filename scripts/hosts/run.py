"""The multi-host acceptance test (``make test-hosts``; root: it makes network namespaces).

Three worker hosts are Linux network namespaces (each with its own UTS namespace, so its own
host name and lease owners), joined by veth pairs to a bridge in the root namespace, which
runs PostgreSQL (the embedded cluster, Unix socket only), PgBouncer (transaction pooling,
SCRAM logins, TLS with the cluster's CA: workers use ``sslmode=verify-full``) and moto's S3
server. Each host runs ``renderer work`` with processes of its own, reaching the database only
through PgBouncer and the store only through S3.

Cases, each on a database and a product prefix of its own, each run on the same traffic
sample (read from S3): one host (the reference), three hosts, then three hosts with a fault
mid-run: kill -9 of every process of one host; one host's link down while it holds running
items, kept down until another host has taken at least one of them over (the reaper's
'expired' attempt, then a claim by another host), then up again; PostgreSQL restarted;
PgBouncer restarted. Every case must end with every item completed exactly once (a trigger
the script adds to each case's database records each accepted completion with its lease),
the same histogram rows and file ledger, and products byte-identical to the one-host run.
The link case fails unless a takeover happened, no completion under a taken-over lease was
accepted, and the cut host's late completions were seen refused (a 'rejected' attempt, its
session ended by the reaper, or its batch found taken over). Each fault and its outcome, and
the time of each case, go to a log file whose path is printed; everything made (namespaces,
links, processes, folders) is removed at the end, on failure too.

This file is the entry point; ``world.py`` makes and unmakes the hosts and services,
``cases.py`` holds the faults and their checks.

    sudo .venv/bin/python scripts/hosts/run.py [--tiles 1 --days 1 --scale 0.5
        --processes 1 --cases three_hosts,link_down]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from cases import CASES, check_same, run_case
from world import (
    BRIDGE_IP,
    LEASE,
    SUBNET,
    TAG,
    Failed,
    Log,
    World,
    make_network,
    make_template,
    start_services,
    tear_down,
    upload_sample,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=1)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--scale", type=float, default=0.5,
                        help="traffic volume of the sample (traversals per tile hour)")
    parser.add_argument("--processes", type=int, default=1, help="worker processes per host")
    parser.add_argument("--cases", default=",".join(CASES),
                        help="comma-separated cases after the one-host reference "
                             f"(default: all of {', '.join(CASES)})")
    args = parser.parse_args()
    chosen = [c for c in args.cases.split(",") if c]
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        print(f"unknown case(s) {unknown}; known: {', '.join(CASES)}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("scripts/hosts/run.py makes network namespaces: run it as root", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix=f"hosts-{TAG}-"))
    folder.chmod(0o755)  # the cluster's service user walks through it
    log = Log(Path(tempfile.gettempdir()) / f"hosts-{TAG}-faults.log")
    print(f"fault log: {log.path}", flush=True)
    world = World(log, folder)
    world.later(f"folder {folder}", lambda: shutil.rmtree(folder, ignore_errors=True))

    def interrupted(signum: int, frame: Any) -> None:
        raise Failed(f"interrupted by signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    started = time.monotonic()
    try:
        make_network(world, 3)
        start_services(world)
        template = "rh_template"
        with ThreadPoolExecutor(2) as pool:  # the sample and the schema, side by side
            files = pool.submit(upload_sample, world, args.tiles, args.days, args.scale)
            pool.submit(make_template, world, template).result()
            count = files.result()
        world.times.append(("set-up", time.monotonic() - started))
        world.log(f"set-up: 3 hosts ({SUBNET}.11-13) on bridge {TAG}br, PostgreSQL, "
                  f"PgBouncer (TLS verify-full, SCRAM, transaction pooling) and S3 at "
                  f"{BRIDGE_IP}; sample {count} files ({args.tiles} tiles, {args.days} "
                  f"days, scale {args.scale}); {args.processes} worker processes per host, "
                  f"leases {LEASE}s; in {world.times[-1][1]:.1f}s")
        at = time.monotonic()
        reference = run_case(world, template, "one_host", 1, args.processes)
        check_same(world, reference, reference)
        world.times.append(("one_host", time.monotonic() - at))
        for i, name in enumerate(chosen):
            at = time.monotonic()
            fault, check = CASES[name]
            label = f"{name}_{i}" if name in chosen[:i] else name  # a case given twice
            result = run_case(world, template, label, 3, args.processes, fault, check)
            check_same(world, reference, result)
            world.times.append((label, time.monotonic() - at))
        world.log("PASSED: all cases in " + f"{time.monotonic() - started:.1f}s wall ("
                  + ", ".join(f"{n} {t:.1f}s" for n, t in world.times) + ")")
        return 0
    except Failed as exc:
        world.log(f"FAILED: {exc}")
        for path in sorted(folder.glob("*.log")):
            tail = path.read_text()[-1500:]
            if "Error" in tail or "Traceback" in tail:
                world.log(f"{path.name}:\n{tail}")
        return 1
    finally:
        tear_down(world, started)
        print(f"fault log: {log.path}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
