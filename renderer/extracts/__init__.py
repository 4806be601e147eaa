"""Downloadable extracts: one archive per region (and one file per month) built nightly by
the ``collect`` stage from what the profiles contribute, listed on ``/extracts``.

Modules: ``regions`` (the named bounding boxes, continents by default), ``model`` (what a
profile contributes: :class:`~renderer.extracts.model.Extract` and its members),
``archive`` (zip and manifest, written atomically, skipped when unchanged), ``stage`` (the
``collect`` handler). See docs/extracts.md.
"""
