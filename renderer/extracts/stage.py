"""The ``collect`` stage: every profile's extracts, each rebuilt only when it changed.

Scheduled nightly by default (``extracts-nightly``, 02:15 UTC, key ``all``); ``renderer
extracts collect`` runs it now. One item builds every extract in turn; an extract that fails
is logged and the others go on, then the item fails naming them (its retry skips the extracts
already done, which are unchanged). An item keyed ``region/NAME`` builds only the extracts of
that region; a payload ``{"force": true}`` rebuilds even what is unchanged.
"""

from __future__ import annotations

import logging

from renderer import pipelines
from renderer.config import Settings
from renderer.errors import RendererError
from renderer.extracts.archive import Published, publish
from renderer.extracts.model import Extract
from renderer.queue import Job
from renderer.storage import Store

__all__ = ["COLLECT_KIND", "REGION_KEY", "collect", "collect_all", "planned"]

log = logging.getLogger(__name__)

COLLECT_KIND = "collect"
REGION_KEY = "region/"
"""Prefix of the key of an item that collects one region (``region/europe``)."""


def planned(store: Store, settings: Settings) -> list[Extract]:
    """What the installed profiles contribute, in profile order."""
    return [extract for profile in pipelines.profiles() if profile.extracts is not None
            for extract in profile.extracts(store, settings)]


def collect_all(store: Store, settings: Settings, *, region: str | None = None,
                force: bool = False) -> list[Published]:
    """Publish every planned extract (of ``region`` only, when named; ``force``: unchanged
    ones too); RendererError naming those that failed, after the others were published."""
    done: list[Published] = []
    failed: list[str] = []
    for extract in planned(store, settings):
        if region is not None and extract.info.get("region") != region:
            continue
        try:
            done.append(publish(store, extract, force=force))
        except RendererError as exc:
            log.error("extract %s failed: %s", extract.name, exc)
            failed.append(f"{extract.name} ({exc})")
    built = sum(1 for p in done if not p.skipped)
    log.info("collect: %d extracts built, %d unchanged, %d failed", built,
             len(done) - built, len(failed))
    if failed:
        raise RendererError(f"{len(failed)} extract(s) failed: " + "; ".join(failed),
                            "see the log; the next run retries them")
    return done


def collect(job: Job) -> None:
    """The ``collect`` handler: ``region/NAME`` collects that region, any other key (``all``
    by the default schedule) everything."""
    key = job.item.key
    region = key[len(REGION_KEY):] if key.startswith(REGION_KEY) else None
    collect_all(job.store, job.settings, region=region,
                force=bool(job.item.payload.get("force")))
