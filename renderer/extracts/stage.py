"""The ``collect`` stage: every profile's extracts, each rebuilt only when it changed.

Scheduled nightly by default (``extracts-nightly``, 02:15 UTC); ``renderer queue enqueue
collect all --force`` runs it now. One item builds every extract in turn; an extract that
fails is logged and the others go on, then the item fails naming them (its retry skips the
extracts already done, which are unchanged).
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

__all__ = ["COLLECT_KIND", "collect", "collect_all", "planned"]

log = logging.getLogger(__name__)

COLLECT_KIND = "collect"


def planned(store: Store, settings: Settings) -> list[Extract]:
    """What the installed profiles contribute, in profile order."""
    return [extract for profile in pipelines.profiles() if profile.extracts is not None
            for extract in profile.extracts(store, settings)]


def collect_all(store: Store, settings: Settings) -> list[Published]:
    """Publish every planned extract; RendererError naming those that failed, after the
    others were published."""
    done: list[Published] = []
    failed: list[str] = []
    for extract in planned(store, settings):
        try:
            done.append(publish(store, extract))
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
    """The ``collect`` handler (any key; ``all`` by the default schedule)."""
    collect_all(job.store, job.settings)
