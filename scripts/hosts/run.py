"""The multi-host acceptance test (``make test-hosts``; root: it makes network namespaces).

Three worker hosts are Linux network namespaces (each with its own UTS namespace, so its own
host name and lease owners), joined by veth pairs to a bridge in the root namespace, which
runs PostgreSQL (the embedded cluster, Unix socket only), PgBouncer (transaction pooling,
SCRAM logins, TLS with the cluster's CA: workers use ``sslmode=verify-full``) and moto's S3
server. Each host runs ``renderer work`` with processes of its own, reaching the database only
through PgBouncer and the store only through S3.

Cases, each on a database and a product prefix of its own, each run on the same traffic
sample (read from S3): one host (the reference), three hosts, then three hosts with a fault
mid-run: kill -9 of every process of one host; one host's link down past its leases, then
up again; PostgreSQL restarted; PgBouncer restarted. Every case must end with every item done
once (the queue's rows, its attempts log, the histogram rows and the file ledger) and with
products byte-identical to the one-host run. Each fault and its outcome go to a log file
whose path is printed; everything made (namespaces, links, processes, folders) is removed
at the end, on failure too.

    sudo .venv/bin/python scripts/hosts/run.py [--tiles 2 --days 2 --keep-log]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from pgbouncer import Bouncer, configure, free_port

from renderer import schema
from renderer.localdb import Cluster
from renderer.traffic.sample import generate

ROOT = Path(__file__).resolve().parents[2]
RENDERER = str(Path(sys.executable).parent / "renderer")
TAG = f"rh{os.getpid() % 100000}"
SUBNET = f"10.231.{os.getpid() % 250}"
BRIDGE_IP = f"{SUBNET}.1"
BUCKET = "rh-hosts"
LEASE = 4  # seconds: short, so that the link case outlives it quickly
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


class Failed(Exception):
    pass


@dataclass
class Log:
    path: Path

    def __call__(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {text}"
        print(line, flush=True)
        with self.path.open("a") as handle:
            handle.write(line + "\n")


@dataclass
class World:
    """What the run made, undone in reverse by :meth:`cleanup`."""

    log: Log
    folder: Path
    undo: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)
    cluster: Cluster | None = None
    bouncer: Bouncer | None = None
    bouncer_url: str = ""
    s3_url: str = ""
    hosts: list[str] = field(default_factory=list)

    def later(self, what: str, action: Callable[[], Any]) -> None:
        self.undo.append((what, action))

    def cleanup(self) -> None:
        for what, action in reversed(self.undo):
            try:
                action()
            except Exception as exc:
                self.log(f"cleanup: {what} failed: {exc}")
        self.undo.clear()


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise Failed(f"{' '.join(args)}: {result.stderr.strip()}")
    return result


# -- the network -------------------------------------------------------------------------------

def make_network(world: World, count: int) -> None:
    bridge = f"{TAG}br"
    sh("ip", "link", "add", bridge, "type", "bridge")
    world.later(f"link {bridge}", lambda: sh("ip", "link", "del", bridge, check=False))
    sh("ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", bridge)
    sh("ip", "link", "set", bridge, "up")
    for i in range(1, count + 1):
        ns, outer, inner = f"{TAG}h{i}", f"{TAG}a{i}", f"{TAG}b{i}"
        sh("ip", "netns", "add", ns)
        world.later(f"netns {ns}", lambda ns=ns: sh("ip", "netns", "del", ns, check=False))
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        world.later(f"link {outer}", lambda o=outer: sh("ip", "link", "del", o, check=False))
        sh("ip", "link", "set", inner, "netns", ns)
        sh("ip", "link", "set", outer, "master", bridge)
        sh("ip", "link", "set", outer, "up")
        inside = ("ip", "netns", "exec", ns)
        sh(*inside, "ip", "addr", "add", f"{SUBNET}.{10 + i}/24", "dev", inner)
        sh(*inside, "ip", "link", "set", inner, "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
        world.hosts.append(ns)


def kill_namespace(ns: str) -> int:
    """kill -9 every process of a host; how many there were."""
    pids = [int(p) for p in sh("ip", "netns", "pids", ns, check=False).stdout.split()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


# -- the services ------------------------------------------------------------------------------

def start_services(world: World) -> None:
    folder = world.folder
    cluster = Cluster(folder / "db", tls=True, tls_names=(BRIDGE_IP,),
                      extra_settings={"fsync": "off", "full_page_writes": "off",
                                      "max_connections": "100"})
    cluster.ensure_started()
    world.cluster = cluster
    world.later("PostgreSQL", cluster.stop)
    cert, key = cluster.ensure_certificates()
    password = secrets.token_urlsafe(18)
    port = free_port(BRIDGE_IP)
    bouncer = configure(folder / "pgbouncer", backend_host=str(cluster.socket_dir),
                        backend_port=cluster.socket_port, port=port, listen=BRIDGE_IP,
                        passwords={"renderer": password}, tls=(cert, key), pool_size=12)
    bouncer.start()
    world.bouncer = bouncer
    world.later("PgBouncer", lambda: world.bouncer.stop() if world.bouncer else None)
    world.bouncer_url = bouncer.url("{db}", password=password, query=(
        f"?sslmode=verify-full&sslrootcert={cluster.ca_file}"))
    s3_port = free_port(BRIDGE_IP)
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", BRIDGE_IP, "-p",
                             str(s3_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    world.later("moto", lambda: (moto.terminate(), moto.wait(10)))
    world.s3_url = f"http://{BRIDGE_IP}:{s3_port}"
    os.environ.update(AWS, AWS_ENDPOINT_URL=world.s3_url)  # for this process's own client
    deadline = time.monotonic() + 30
    while True:
        try:
            s3().create_bucket(Bucket=BUCKET)
            break
        except Exception as exc:
            if time.monotonic() > deadline:
                raise Failed(f"moto's S3 server did not start: {exc}") from None
            time.sleep(0.2)


_S3: dict[str, Any] = {}


def s3() -> Any:
    if "client" not in _S3:
        _S3["client"] = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    return _S3["client"]


def objects(prefix: str) -> dict[str, bytes]:
    found = {}
    for page in s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for entry in page.get("Contents", []):
            body = s3().get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read()
            found[entry["Key"][len(prefix):]] = body
    return found


# -- one case ----------------------------------------------------------------------------------

def direct_url(world: World, name: str) -> str:
    assert world.cluster is not None
    return world.cluster.url(name)


def admin(world: World) -> psycopg.Connection[Any]:
    return psycopg.connect(direct_url(world, "postgres"), autocommit=True)


def db_cpu_seconds(world: World) -> tuple[int, float]:
    """(the postmaster's pid, the CPU seconds of the server so far): the postmaster and every
    process under it, with the children it has reaped (cutime, cstime), from /proc."""
    assert world.cluster is not None
    postmaster = int((world.cluster.data / "postmaster.pid").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster or ppid == postmaster:
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return postmaster, total / tick


@dataclass
class Result:
    name: str
    wall: float
    items: int
    db_cpu: float | None  # None across a restart of the server
    products: dict[str, bytes]
    keys: set[tuple[str, str]]
    rows: tuple[int, int]
    attempts: dict[str, int]


def host_env(world: World, case: str, ns: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "HOME": str(world.folder / ns), **AWS, "AWS_ENDPOINT_URL": world.s3_url,
            "RENDERER_DATABASE_URL": world.bouncer_url.replace("{db}", f"rh_{case}"),
            "RENDERER_POOLER": "pgbouncer", "RENDERER_HOME": str(world.folder / ns),
            "RENDERER_STORAGE": f"s3://{BUCKET}/{case}", "RENDERER_LEASE_SECONDS": str(LEASE),
            "RENDERER_POLL_SECONDS": "0.2", "RENDERER_TRAFFIC_AFTER": "keep"}


def start_host(world: World, case: str, ns: str, processes: int) -> subprocess.Popen[str]:
    name = ns.replace(TAG, "host-")
    (world.folder / ns).mkdir(exist_ok=True)
    out = (world.folder / f"{case}-{ns}.log").open("w")
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c",
         f'hostname {name} && exec "$0" work --processes {processes} --until-empty', RENDERER],
        env=host_env(world, case, ns), stdout=out, stderr=subprocess.STDOUT, text=True,
        cwd=world.folder)


def progress(world: World, case: str) -> tuple[int, int, dict[str, int]]:
    """(done, total, running items per host name)."""
    with psycopg.connect(direct_url(world, f"rh_{case}")) as conn:
        done, total = conn.execute("SELECT count(*) FILTER (WHERE state = 'done'), count(*)"
                                   " FROM work_queue").fetchone() or (0, 0)
        running = dict(conn.execute(
            "SELECT split_part(lease_owner, '/', 1), count(*) FROM work_queue"
            " WHERE state = 'running' GROUP BY 1").fetchall())
    return int(done), int(total), {str(k): int(v) for k, v in running.items()}


Fault = Callable[[World, str], str]


def when_busy(world: World, case: str) -> tuple[str, str]:
    """Wait until some host holds running items (a claimed batch); that host (host-h2 when
    it is one of them) and a line saying where the run was."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, total, running = progress(world, case)
        if running:
            host = "host-h2" if "host-h2" in running else sorted(running)[0]
            return host, f"at {done}/{total} items done, running per host {running}"
        time.sleep(0.02)
    raise Failed(f"{case}: no host ever held running items to fault")


def namespace(world: World, host: str) -> tuple[str, str]:
    """The namespace of host-hN and its link inside."""
    n = int(host.rsplit("h", 1)[1])
    return world.hosts[n - 1], f"{TAG}b{n}"


def kill_host(world: World, case: str) -> str:
    host, where = when_busy(world, case)
    killed = kill_namespace(namespace(world, host)[0])
    return f"kill -9 of all {killed} processes of {host} {where}"


def cut_link(world: World, case: str) -> str:
    host, where = when_busy(world, case)
    ns, link = namespace(world, host)
    sh("ip", "netns", "exec", ns, "ip", "link", "set", link, "down")
    down = LEASE * 2 + 3
    time.sleep(down)
    sh("ip", "netns", "exec", ns, "ip", "link", "set", link, "up")
    return f"{host}'s link down for {down}s (leases {LEASE}s) {where}, then up"


def restart_postgres(world: World, case: str) -> str:
    assert world.cluster is not None
    _, where = when_busy(world, case)
    started = time.monotonic()
    world.cluster.stop()
    world.cluster.start()
    return f"PostgreSQL restarted (fast stop, start: {time.monotonic() - started:.1f}s) {where}"


def restart_bouncer(world: World, case: str) -> str:
    assert world.bouncer is not None
    _, where = when_busy(world, case)
    world.bouncer.stop()
    world.bouncer.start()
    return f"PgBouncer restarted (immediate shutdown, start) {where}"


def run_case(world: World, template: str, case: str, hosts: int,
             fault: Fault | None = None) -> Result:
    with admin(world) as conn:
        conn.execute(f'CREATE DATABASE "rh_{case}" TEMPLATE "{template}"')
    (world.folder / "root").mkdir(exist_ok=True)
    submitted = subprocess.run(
        [RENDERER, "traffic", "submit", "--source", f"s3://{BUCKET}/sample", "--after", "keep",
         "--json"],
        env={**host_env(world, case, "root"), "RENDERER_POOLER": "",
             "RENDERER_DATABASE_URL": direct_url(world, f"rh_{case}"),
             "AWS_ENDPOINT_URL": world.s3_url},
        capture_output=True, text=True, check=False)
    if submitted.returncode != 0:
        raise Failed(f"{case}: submit failed: {submitted.stderr.strip()[-300:]}")
    cpu_before, started = db_cpu_seconds(world), time.monotonic()
    workers = [start_host(world, case, ns, 2) for ns in world.hosts[:hosts]]
    outcome = fault(world, case) if fault is not None else ""
    if outcome:
        world.log(f"{case}: fault: {outcome}")
    deadline = time.monotonic() + 150
    for process in workers:
        try:
            process.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise Failed(f"{case}: a host's workers did not finish; see {world.folder}") from None
    wall = time.monotonic() - started
    cpu_after = db_cpu_seconds(world)
    db_cpu = cpu_after[1] - cpu_before[1] if cpu_after[0] == cpu_before[0] else None
    with psycopg.connect(direct_url(world, f"rh_{case}")) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM work_queue GROUP BY state"
                                   ).fetchall())
        keys = {(k, key) for k, key in conn.execute("SELECT kind, key FROM work_queue")}
        rows = conn.execute("SELECT (SELECT count(*) FROM traffic_histograms),"
                            " (SELECT count(*) FROM traffic_files)").fetchone()
        attempts = dict(conn.execute("SELECT outcome, count(*) FROM queue_attempts"
                                     " GROUP BY outcome").fetchall())
    for path in sorted(world.folder.glob(f"{case}-*.log")):
        said = [line.strip() for line in path.read_text().splitlines()
                if any(w in line for w in ("lost", "refused", "reconnect", "unavailable"))]
        if said:
            world.log(f"{case}: {path.stem.split('-', 1)[1].replace(TAG, 'host-')} said "
                      f"({len(said)} lines): {said[0][:200]}")
    if set(states) != {"done"}:
        raise Failed(f"{case}: items not all done: {states}")
    assert rows is not None
    return Result(case, wall, len(keys), db_cpu, objects(f"{case}/"), keys,
                  (int(rows[0]), int(rows[1])), {str(k): int(v) for k, v in attempts.items()})


def check_same(world: World, reference: Result, result: Result) -> None:
    problems = []
    if result.keys != reference.keys:
        problems.append(f"items differ: {len(result.keys ^ reference.keys)} not in both")
    if result.rows != reference.rows:
        problems.append(f"histogram rows and ledger {result.rows} != {reference.rows}")
    if set(result.products) != set(reference.products):
        odd = sorted(set(result.products) ^ set(reference.products))
        problems.append(f"product keys differ: {odd[:5]}")
    differ = [k for k in reference.products
              if k in result.products and result.products[k] != reference.products[k]]
    if differ:
        problems.append(f"{len(differ)} products differ in bytes: {differ[:5]}")
    cpu = ("database CPU n/a (server restarted)" if result.db_cpu is None else
           f"database CPU {result.db_cpu:.2f}s ({1000 * result.db_cpu / result.items:.2f} "
           "ms/item)")
    world.log(f"{result.name}: {result.items} items done once each in {result.wall:.1f}s "
              f"({result.items / result.wall:.1f} items/s), {cpu}, "
              f"{len(result.products)} products, attempts log {result.attempts or '{}'}: "
              + ("SAME as one host" if not problems else "; ".join(problems)))
    if problems:
        raise Failed(f"{result.name}: " + "; ".join(problems))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=2)
    parser.add_argument("--days", type=int, default=2)
    args = parser.parse_args()
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
        made = generate(folder / "sample", tiles=args.tiles, days=args.days, seed=11)
        for path in sorted(made.root.rglob("*")):
            if path.is_file():
                s3().upload_file(str(path), BUCKET, f"sample/{path.relative_to(made.root)}")
        world.log(f"set-up: 3 hosts ({SUBNET}.11-13) on bridge {TAG}br, PostgreSQL, "
                  f"PgBouncer (TLS verify-full, SCRAM, transaction pooling) and S3 at "
                  f"{BRIDGE_IP}; sample {made.files} files ({args.tiles} tiles, {args.days} "
                  f"days) in {time.monotonic() - started:.1f}s")
        template = "rh_template"
        with admin(world) as conn:
            conn.execute(f'CREATE DATABASE "{template}"')
        schema.upgrade(direct_url(world, template))
        reference = run_case(world, template, "one_host", 1)
        check_same(world, reference, reference)
        cases: list[tuple[str, Fault | None]] = [
            ("three_hosts", None), ("kill_9_host", kill_host), ("link_down", cut_link),
            ("postgres_restart", restart_postgres), ("pgbouncer_restart", restart_bouncer)]
        for name, fault in cases:
            check_same(world, reference, run_case(world, template, name, 3, fault))
        world.log(f"PASSED: all cases in {time.monotonic() - started:.1f}s wall")
        return 0
    except Failed as exc:
        world.log(f"FAILED: {exc}")
        for path in sorted(folder.glob("*.log")):
            tail = path.read_text()[-1500:]
            if "Error" in tail or "Traceback" in tail:
                world.log(f"{path.name}:\n{tail}")
        return 1
    finally:
        for ns in world.hosts:
            kill_namespace(ns)
        world.cleanup()
        left = [line for line in sh("ip", "-o", "link").stdout.splitlines() if TAG in line]
        left += [n for n in sh("ip", "netns", "list").stdout.split() if n.startswith(TAG)]
        world.log(f"cleanup done in {time.monotonic() - started:.1f}s total"
                  + (f"; LEFT BEHIND: {left}" if left else ": nothing left behind"))
        print(f"fault log: {log.path}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
