"""The cases of the multi-host test: each runs the traffic sample on hosts of the world
(:mod:`world`) on a database and a product prefix of its own, with a fault mid-run, and checks
that every item was completed exactly once per enqueue and the products are the one-host run's.

A case is a fault (what to do mid-run; a line for the log) and a check (what to prove after,
from the case's database; a line for the log), named in :data:`CASES`.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from world import (
    BUCKET,
    LEASE,
    RENDERER,
    TAG,
    Failed,
    World,
    admin,
    db_cpu_seconds,
    direct_url,
    host_env,
    kill_namespace,
    namespace,
    objects,
    sh,
    start_host,
)


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


def progress(world: World, case: str,
             heartbeating: bool = False) -> tuple[int, int, dict[str, int]]:
    """(done, total, running items per host name); with ``heartbeating``, only items of
    owners that have heartbeated (a row in queue_workers)."""
    only = (" WHERE owner IN (SELECT owner FROM queue_workers)" if heartbeating else "")
    with psycopg.connect(direct_url(world, f"rh_{case}")) as conn:
        done, total = conn.execute("SELECT count(*) FILTER (WHERE state = 'done'), count(*)"
                                   " FROM work_queue").fetchone() or (0, 0)
        running: dict[Any, Any] = dict(conn.execute(
            "SELECT split_part(owner, '/', 1), sum(cardinality(ids)) FROM queue_leases"
            + only + " GROUP BY 1").fetchall())
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
        "SELECT x.id, l.token FROM queue_leases l CROSS JOIN LATERAL unnest(l.ids) AS x(id)"
        " WHERE split_part(l.owner, '/', 1) = %s", (host,))}


def taken_over(conn: psycopg.Connection[Any], host: str, ids: list[int]) -> dict[int, str]:
    """Items of ``ids`` whose lease of ``host`` expired (the reaper's 'expired' attempt) and
    that another host has claimed since, or completed: item id -> that host."""
    return {int(i): str(h) for i, h in conn.execute(
        "SELECT w.id, coalesce(split_part(w.lease_owner, '/', 1),"
        "   (SELECT split_part(c.owner, '/', 1) FROM rh_completions c"
        "    WHERE c.item_id = w.id ORDER BY c.at DESC LIMIT 1))"
        " FROM queue_items w WHERE w.id = ANY (%s::bigint[])"
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
                    " FROM queue_items w WHERE w.state = 'running' GROUP BY 1").fetchall()
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
            "SELECT state, count(*) FROM queue_items GROUP BY state").fetchall())
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
