"""``renderer extracts``: what is published under ``extracts/`` in the store, and collecting
it now (the nightly ``collect`` stage's items, enqueued on demand). See docs/extracts.md."""

from __future__ import annotations

from typing import Any

import click

from renderer import db
from renderer import queue as q
from renderer.cli._common import database, output_options, settings, show
from renderer.errors import InputError, RendererError
from renderer.extracts.archive import read_manifests
from renderer.extracts.regions import parse_regions
from renderer.extracts.stage import COLLECT_KIND, REGION_KEY
from renderer.storage import Store, open_store
from renderer.worker import run_worker

LIST_COLUMNS = ["name", "region", "file", "size", "generated_at", "files"]
COLLECT_COLUMNS = ["name", "action", "file", "size", "generated_at"]


@click.group("extracts")
def extracts() -> None:
    """Downloadable extracts: list what is published, collect them now.

    \b
    Example:
        renderer extracts collect --region europe --wait
        renderer extracts list
    """


def _row(manifest: dict[str, Any]) -> dict[str, Any]:
    download = manifest.get("download") or {}
    return {"name": manifest.get("name"), "region": (manifest.get("info") or {}).get("region"),
            "file": download.get("key"), "size": download.get("size"),
            "generated_at": manifest.get("generated_at"),
            "files": len(manifest.get("files") or [])}


def _published(store: Store) -> dict[str, dict[str, Any]]:
    return {str(m.get("name")): _row(m) for m in read_manifests(store)}


@extracts.command("list")
@output_options
def list_command(fmt: str) -> None:
    """List the published extracts: region, file, size, generated at, files count.

    \b
    Example:
        renderer extracts list
        renderer extracts list --json | jq -r '.[].file'
    """
    store = open_store(settings().store_url)
    rows = list(_published(store).values())
    if not rows and fmt != "json":
        click.echo(f"no extracts published in {store.url} (renderer extracts collect --wait "
                   "builds them)", err=True)
    show(rows, fmt, title="extracts", columns=LIST_COLUMNS)


def _keys(names: tuple[str, ...], setting: str) -> list[str]:
    """The items' keys: one per named region (each must be configured), else ``all``."""
    if not names:
        return ["all"]
    known = [r.name for r in parse_regions(setting)]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown region {unknown[0]!r}",
                         f"configured: {', '.join(known)}; see [extracts] regions")
    return [REGION_KEY + n for n in dict.fromkeys(names)]


def _in_scope(row: dict[str, Any], regions: tuple[str, ...]) -> bool:
    return not regions or row["region"] in regions


@extracts.command("collect")
@click.option("--region", "regions", multiple=True, metavar="NAME",
              help="Only this region's extracts (repeatable; default: every extract).")
@click.option("--force", is_flag=True, help="Rebuild extracts even when unchanged.")
@click.option("--wait", is_flag=True, help="Work the items in this process until done.")
@output_options
def collect_command(regions: tuple[str, ...], force: bool, wait: bool, fmt: str) -> None:
    """Enqueue the collect stage's items now (as the nightly schedule does).

    Without --region one item builds every extract (traffic per region, sensors per month);
    each --region NAME is an item building that region's extracts. An extract whose inputs
    did not change is skipped, unless --force. Items run under `renderer work`, or here with
    --wait, which then prints what was written or skipped.

    \b
    Example:
        renderer extracts collect --wait
        renderer extracts collect --region europe --region alps --force
    """
    s = settings()
    keys = _keys(regions, s.extracts_regions)
    url = database().url
    store = open_store(s.store_url)
    before = _published(store) if wait else {}
    with db.transaction(url) as conn:
        # Forced like a schedule's tick: a done item runs again; the stage skips what is
        # unchanged.
        actions = [q.enqueue(conn, COLLECT_KIND, key, {"force": True} if force else None,
                             priority=q.PRIORITY_ON_DEMAND, force=True) for key in keys]
    if not wait:
        show([{"kind": COLLECT_KIND, "key": k, "action": a} for k, a in zip(keys, actions,
                                                                            strict=True)],
             fmt, title="enqueued")
        if fmt != "json":
            click.echo("next: renderer work (or --wait)", err=True)
        return
    run_worker(url, kinds=[COLLECT_KIND], until_empty=True, settings=s)
    after = _published(store)
    # Written: its manifest changed (a new download), or rebuilt by --force (which may give
    # the same key, size and time when it lands in the same second as the last one).
    rows = [{**row, "action": "written" if force or before.get(name) != row else "skipped"}
            for name, row in after.items() if _in_scope(row, regions)]
    if not rows and fmt != "json":
        click.echo("nothing to collect: no extract has any input (see docs/extracts.md)",
                   err=True)
    show(rows, fmt, title="collected", columns=COLLECT_COLUMNS)
    with db.connect(url, autocommit=True) as conn:
        failed = [k for k in keys
                  if (q.item_history(conn, COLLECT_KIND, k) or {}).get("state") == "failed"]
    if failed:
        raise RendererError(f"collect {', '.join(failed)} failed",
                            f"see `renderer queue history {COLLECT_KIND} {failed[0]}`")


COMMANDS = [extracts]
