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

    sudo .venv/bin/python scripts/hosts/run.py [--tiles 1 --days 1 --scale 0.5
        --processes 1 --cases three_hosts,link_down]
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
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
LEASE = 3  # seconds: short, so that the kill and link cases outlive it quickly
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


class Failed(Exception):
    pass


# Instrumentation of the cases' databases (not of the product's schema): every accepted
# completion, with the lease it was accepted under, and every time a done item is enqueued
# again (a fan-in successor fired by a later group, e.g. coverage), so that a case can prove
# each item was done exactly once per enqueue and no completion under a taken-over lease
# got through.
AUDIT = """
CREATE TABLE rh_completions (item_id bigint NOT NULL, owner text, token uuid,
                             at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE rh_requeues (item_id bigint NOT NULL,
                          at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION rh_completed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rh_completions (item_id, owner, token)
    VALUES (OLD.id, OLD.lease_owner, OLD.lease_token);
    RETURN NULL;
END $$;
CREATE FUNCTION rh_requeued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rh_requeues (item_id) VALUES (OLD.id);
    RETURN NULL;
END $$;
CREATE TRIGGER rh_completed AFTER UPDATE OF state ON work_queue FOR EACH ROW
    WHEN (OLD.state = 'running' AND NEW.state = 'done') EXECUTE FUNCTION rh_completed();
CREATE TRIGGER rh_requeued AFTER UPDATE OF state ON work_queue FOR EACH ROW
    WHEN (OLD.state = 'done' AND NEW.state <> 'done') EXECUTE FUNCTION rh_requeued();
"""


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
    cuts: dict[str, Cut] = field(default_factory=dict)
    times: list[tuple[str, float]] = field(default_factory=list)

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
        world.later(f"netns {ns}", partial(sh, "ip", "netns", "del", ns, check=False))
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        world.later(f"link {outer}", partial(sh, "ip", "link", "del", outer, check=False))
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
    def stop_moto() -> None:
        moto.terminate()
        moto.wait(10)

    world.later("moto", stop_moto)
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
    requeued: int = 0


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


def progress(world: World, case: str,
             heartbeating: bool = False) -> tuple[int, int, dict[str, int]]:
    """(done, total, running items per host name); with ``heartbeating``, only items of
    owners that have heartbeated (a row in queue_workers)."""
    only = (" AND lease_owner IN (SELECT owner FROM queue_workers)" if heartbeating else "")
    with psycopg.connect(direct_url(world, f"rh_{case}")) as conn:
        done, total = conn.execute("SELECT count(*) FILTER (WHERE state = 'done'), count(*)"
                                   " FROM work_queue").fetchone() or (0, 0)
        running: dict[Any, Any] = dict(conn.execute(
            "SELECT split_part(lease_owner, '/', 1), count(*) FROM work_queue"
            " WHERE state = 'running'" + only + " GROUP BY 1").fetchall())
    return int(done), int(total), {str(k): int(v) for k, v in running.items()}


Fault = Callable[[World, str], str]


def when_busy(world: World, case: str, heartbeating: bool = False) -> tuple[str, str]:
    """Wait until some host holds running items (a claimed batch; with ``heartbeating``, of
    a worker that has heartbeated once); that host (host-h2 when it is one of them) and a
    line saying where the run was."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, total, running = progress(world, case, heartbeating)
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


@dataclass
class Cut:
    """What the link case saw: the cut host, the leases it held when cut (item id: token),
    the items taken over from it and how long its link stayed down."""

    host: str
    held: dict[int, str]
    taken: dict[int, str] = field(default_factory=dict)  # item id: host that took it over
    down: float = 0.0
    first_takeover: float = 0.0


def held_by_host(conn: psycopg.Connection[Any], host: str) -> dict[int, str]:
    return {int(i): str(t) for i, t in conn.execute(
        "SELECT id, lease_token FROM work_queue WHERE state = 'running'"
        " AND split_part(lease_owner, '/', 1) = %s", (host,))}


def taken_over(conn: psycopg.Connection[Any], host: str, ids: list[int]) -> dict[int, str]:
    """Items of ``ids`` whose lease of ``host`` expired (the reaper's 'expired' attempt) and
    that another host has claimed since, or completed: item id -> that host."""
    return {int(i): str(h) for i, h in conn.execute(
        "SELECT w.id, coalesce(split_part(w.lease_owner, '/', 1),"
        "   (SELECT split_part(c.owner, '/', 1) FROM rh_completions c"
        "    WHERE c.item_id = w.id ORDER BY c.at DESC LIMIT 1))"
        " FROM work_queue w WHERE w.id = ANY (%s::bigint[])"
        " AND EXISTS (SELECT 1 FROM queue_attempts a WHERE a.item_id = w.id"
        "   AND a.outcome = 'expired' AND split_part(a.owner, '/', 1) = %s)"
        " AND ((w.state = 'running' AND split_part(w.lease_owner, '/', 1) <> %s)"
        "   OR w.state = 'done')", (ids, host, host))}


def cut_link(world: World, case: str) -> str:
    """Cut a host's link while it holds running items; keep it down until another host has
    taken at least one of them over (reaped as expired, claimed again), then restore it."""
    url = direct_url(world, f"rh_{case}")
    for _ in range(3):
        # A worker cut off before its first heartbeat is never reaped: its processing
        # session holds the rows and the reaper only ends sessions of owners it has seen
        # (queue_reap_v2). Cut a host whose worker has heartbeated.
        host, where = when_busy(world, case, heartbeating=True)
        ns, link = namespace(world, host)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", link, "down")
        cut_at = time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            held = held_by_host(conn, host)  # nothing of it can change them now but a reaper
            if not held:  # its last batch committed just before the cut: try again
                sh("ip", "netns", "exec", ns, "ip", "link", "set", link, "up")
                continue
            cut = world.cuts[case] = Cut(host, held)
            seen: list[Any] = []
            deadline = cut_at + 20 * LEASE + 30
            while not cut.taken and time.monotonic() < deadline:
                time.sleep(0.2)
                cut.taken = taken_over(conn, host, list(held))
            cut.first_takeover = time.monotonic() - cut_at
            if not cut.taken:
                seen = conn.execute(
                    "SELECT w.lease_owner, count(*), min(w.lease_expires - now()),"
                    " (SELECT now() - max(seen_at) FROM queue_workers q"
                    "  WHERE q.owner = w.lease_owner),"
                    " (SELECT string_agg(a.state || ' ' || a.application_name, '; ')"
                    "  FROM pg_stat_activity a WHERE a.application_name LIKE 'renderer lease%%'"
                    "  AND a.datname = current_database())"
                    " FROM work_queue w WHERE w.state = 'running' GROUP BY 1").fetchall()
        sh("ip", "netns", "exec", ns, "ip", "link", "set", link, "up")
        cut.down = time.monotonic() - cut_at
        if not cut.taken:
            raise Failed(f"{case}: {host}'s link was down {cut.down:.0f}s (leases {LEASE}s) "
                         f"and no other host took over any of its {len(held)} items; running "
                         f"(owner, items, lease left, since heartbeat, sessions): {seen}")
        return (f"{host}'s link down for {cut.down:.1f}s (leases {LEASE}s) {where}, holding "
                f"{len(held)} items; first takeover seen after {cut.first_takeover:.1f}s "
                f"({len(cut.taken)} items expired and taken by "
                f"{sorted(set(cut.taken.values()))}), then up")
    raise Failed(f"{case}: three times the host held nothing once its link was cut")


def check_link(world: World, case: str, conn: psycopg.Connection[Any]) -> str:
    """After the link case: every item the cut host held and lost to a takeover was completed
    under the new lease only; each late completion of the cut host was refused, either by
    fencing (a 'rejected' attempt) or because the reaper had ended its session."""
    cut = world.cuts[case]
    ids = list(cut.held)
    expired = [int(i) for (i,) in conn.execute(
        "SELECT DISTINCT item_id FROM queue_attempts WHERE outcome = 'expired'"
        " AND split_part(owner, '/', 1) = %s AND item_id = ANY (%s::bigint[])", (cut.host, ids))]
    if not expired:
        raise Failed(f"{case}: no lease of {cut.host} expired: nothing was taken over")
    late = [(int(i), str(o)) for i, o in conn.execute(
        "SELECT c.item_id, c.owner FROM rh_completions c"
        " JOIN unnest(%s::bigint[], %s::uuid[]) AS h (id, token)"
        "   ON h.id = c.item_id AND h.token = c.token",
        (expired, [cut.held[i] for i in expired]))]
    if late:
        raise Failed(f"{case}: {len(late)} late completions of {cut.host} under a taken-over "
                     f"lease were accepted: {late[:5]}")
    finishers = sorted({str(o).split("/")[0] for (o,) in conn.execute(
        "SELECT owner FROM rh_completions WHERE item_id = ANY (%s::bigint[])", (expired,))})
    rejected = [(int(i), str(m)) for i, m in conn.execute(
        "SELECT item_id, message FROM queue_attempts WHERE outcome = 'rejected'"
        " AND item_id = ANY (%s::bigint[])", (ids,))]
    host_log = world.folder / f"{case}-{namespace(world, cut.host)[0]}.log"
    text = host_log.read_text() if host_log.exists() else ""
    ended = [line for line in text.splitlines() if "lost its connection" in line]
    before = [line for line in text.splitlines() if "taken over before they ran" in line]
    if not (rejected or ended or before):
        raise Failed(f"{case}: {cut.host} never tried to complete after its link came back "
                     f"(no rejected attempt, no ended session in {host_log.name}): the "
                     "refusal of late completions was not exercised")
    return (f"takeover and refusal: {len(expired)} of the {len(cut.held)} items {cut.host} "
            f"held expired (queue_attempts 'expired', owner {cut.host}) and were completed by "
            f"{finishers} under new leases; late completions of {cut.host}: "
            f"{len(rejected)} refused by fencing ('rejected' attempts"
            + (f", e.g. {rejected[0][1]!r}" if rejected else "") + f"), {len(ended)} found "
            f"its session ended by the reaper ('lost its connection'), {len(before)} batches "
            f"found taken over before they ran; 0 accepted under a taken-over lease")


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


Check = Callable[[World, str, psycopg.Connection[Any]], str]


def run_case(world: World, template: str, case: str, hosts: int, processes: int,
             fault: Fault | None = None, check: Check | None = None) -> Result:
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
    workers = [start_host(world, case, ns, processes) for ns in world.hosts[:hosts]]
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
        states: dict[Any, Any] = dict(conn.execute(
            "SELECT state, count(*) FROM work_queue GROUP BY state").fetchall())
        keys = {(k, key) for k, key in conn.execute("SELECT kind, key FROM work_queue")}
        rows = conn.execute("SELECT (SELECT count(*) FROM traffic_histograms),"
                            " (SELECT count(*) FROM traffic_files)").fetchone()
        attempts: dict[Any, Any] = dict(conn.execute("SELECT outcome, count(*) FROM queue_attempts"
                                     " GROUP BY outcome").fetchall())
        twice = conn.execute(
            "SELECT c.item_id, c.n, coalesce(r.n, 0) FROM"
            " (SELECT item_id, count(*) AS n FROM rh_completions GROUP BY 1) c LEFT JOIN"
            " (SELECT item_id, count(*) AS n FROM rh_requeues GROUP BY 1) r USING (item_id)"
            " WHERE c.n <> 1 + coalesce(r.n, 0) ORDER BY 1 LIMIT 5").fetchall()
        again = int(db_one(conn, "SELECT count(*) FROM rh_requeues"))
        completed = int(db_one(conn, "SELECT count(DISTINCT item_id) FROM rh_completions"))
        # A rerun request that its item's last run began before (queue_apply_reruns would
        # queue it again): that run may have missed what the request was for.
        unapplied = conn.execute(
            "SELECT r.kind, r.key, r.requested_at::text, w.started_at::text"
            " FROM queue_reruns r JOIN work_queue w ON w.kind = r.kind AND w.key = r.key"
            " WHERE w.state IN ('done', 'failed') AND w.started_at <= r.requested_at"
            " ORDER BY 1, 2 LIMIT 5").fetchall()
        checked = check(world, case, conn) if check is not None else ""
        history = [" ".join(str(v) for v in row) for row in conn.execute(
            "SELECT w.id, w.kind, w.key, string_agg(e.what, '; ' ORDER BY e.at)"
            " FROM work_queue w JOIN ("
            "   SELECT item_id, at, 'completed by ' || owner AS what FROM rh_completions"
            "   UNION ALL SELECT item_id, at, 'enqueued again' FROM rh_requeues"
            "   UNION ALL SELECT item_id, at, outcome || ' ' || coalesce(owner, '')"
            "   || ' ' || coalesce(message, '') FROM queue_attempts) e ON e.item_id = w.id"
            " WHERE w.id = ANY (%s::bigint[]) GROUP BY 1, 2, 3", ([r[0] for r in twice],))]
    for path in sorted(world.folder.glob(f"{case}-*.log")):
        said = [line.strip() for line in path.read_text().splitlines()
                if any(w in line for w in ("lost", "refused", "reconnect", "unavailable"))]
        if said:
            world.log(f"{case}: {path.stem.split('-', 1)[1].replace(TAG, 'host-')} said "
                      f"({len(said)} lines): {said[0][:200]}")
    if set(states) != {"done"}:
        raise Failed(f"{case}: items not all done: {states}")
    if unapplied:
        raise Failed(f"{case}: the workers stopped with rerun requests left unapplied "
                     f"(kind, key, requested at, last run started at): {unapplied}")
    if twice or completed != len(keys):
        raise Failed(f"{case}: not every item completed exactly once per enqueue: "
                     f"{completed} of {len(keys)} completed, (item, completions, enqueued "
                     f"again) {twice}: {history}")
    if checked:
        world.log(f"{case}: {checked}")
    assert rows is not None
    return Result(case, wall, len(keys), db_cpu, objects(f"{case}/"), keys,
                  (int(rows[0]), int(rows[1])), {str(k): int(v) for k, v in attempts.items()},
                  again)


def db_one(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    return row[0] if row else None


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
        kept = Path(tempfile.gettempdir()) / f"hosts-{TAG}-differ"
        for key in differ[:5]:  # both versions, kept for a look (small files)
            for side, found in (("one_host", reference.products), (result.name, result.products)):
                target = kept / side / key
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(found[key])
        problems.append(f"{len(differ)} products differ in bytes: {differ[:5]} (both kept "
                        f"in {kept})")
    cpu = ("database CPU n/a (server restarted)" if result.db_cpu is None else
           f"database CPU {result.db_cpu:.2f}s ({1000 * result.db_cpu / result.items:.2f} "
           "ms/item)")
    again = (f" (and once more after each of {result.requeued} enqueues of a done successor)"
             if result.requeued else "")
    world.log(f"{result.name}: {result.items} items completed once each{again} in "
              f"{result.wall:.1f}s "
              f"({result.items / result.wall:.1f} items/s), {cpu}, "
              f"{len(result.products)} products, attempts log {result.attempts or '{}'}: "
              + ("SAME as one host" if not problems else "; ".join(problems)))
    if problems:
        raise Failed(f"{result.name}: " + "; ".join(problems))


CASES: dict[str, tuple[Fault | None, Check | None]] = {
    "three_hosts": (None, None), "kill_9_host": (kill_host, None),
    "link_down": (cut_link, check_link), "postgres_restart": (restart_postgres, None),
    "pgbouncer_restart": (restart_bouncer, None)}


def upload_sample(world: World, tiles: int, days: int, scale: float) -> int:
    """Write the traffic sample and put it in S3 (several uploads at a time)."""
    made = generate(world.folder / "sample", tiles=tiles, days=days, seed=11, scale=scale)
    files = [path for path in sorted(made.root.rglob("*")) if path.is_file()]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda path: s3().upload_file(
            str(path), BUCKET, f"sample/{path.relative_to(made.root)}"), files))
    return made.files


def make_template(world: World, name: str) -> None:
    with admin(world) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    schema.upgrade(direct_url(world, name))
    with psycopg.connect(direct_url(world, name), autocommit=True) as conn:
        conn.execute(AUDIT.encode())


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
