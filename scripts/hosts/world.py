"""The world of the multi-host test: three hosts as network namespaces on a bridge, the
services they reach (PostgreSQL, PgBouncer, moto's S3), the sample, the cases' template
database with its audit triggers, and the cleanup that undoes all of it, on failure too.

Everything made is registered with :meth:`World.later` as it is made; :func:`tear_down` kills
the hosts' processes, undoes the list in reverse and says what, if anything, was left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import psycopg
from pgbouncer import Bouncer, configure, free_port

from renderer import schema
from renderer.localdb import Cluster
from renderer.traffic.sample import generate

if TYPE_CHECKING:
    from cases import Cut

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
CREATE TABLE rh_leases (token uuid PRIMARY KEY, owner text);
CREATE FUNCTION rh_leased() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rh_leases (token, owner) VALUES (NEW.token, NEW.owner);
    RETURN NULL;
END $$;
CREATE TRIGGER rh_leased AFTER INSERT ON queue_leases FOR EACH ROW
    EXECUTE FUNCTION rh_leased();
-- A leased item is 'pending' in work_queue until its completion (per-batch leases): the
-- lease it completes under is the one its processing transaction locked (queue_lock_v3
-- names the session after it).
CREATE FUNCTION rh_completed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_token uuid := substring(current_setting('application_name')
                              FROM '^renderer lease (.*)$')::uuid;
BEGIN
    INSERT INTO rh_completions (item_id, owner, token)
    VALUES (OLD.id, (SELECT l.owner FROM rh_leases l WHERE l.token = v_token), v_token);
    RETURN NULL;
END $$;
CREATE FUNCTION rh_requeued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rh_requeues (item_id) VALUES (OLD.id);
    RETURN NULL;
END $$;
CREATE TRIGGER rh_completed AFTER UPDATE OF state ON work_queue FOR EACH ROW
    WHEN (OLD.state = 'pending' AND NEW.state = 'done') EXECUTE FUNCTION rh_completed();
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


# -- the databases -----------------------------------------------------------------------------

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


# -- the hosts ---------------------------------------------------------------------------------

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


def namespace(world: World, host: str) -> tuple[str, str]:
    """The namespace of host-hN and its link inside."""
    n = int(host.rsplit("h", 1)[1])
    return world.hosts[n - 1], f"{TAG}b{n}"


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


def tear_down(world: World, started: float) -> None:
    """Kill every process of the hosts, undo what was made and log what was left behind."""
    for ns in world.hosts:
        kill_namespace(ns)
    world.cleanup()
    left = [line for line in sh("ip", "-o", "link").stdout.splitlines() if TAG in line]
    left += [n for n in sh("ip", "netns", "list").stdout.split() if n.startswith(TAG)]
    world.log(f"cleanup done in {time.monotonic() - started:.1f}s total"
              + (f"; LEFT BEHIND: {left}" if left else ": nothing left behind"))
