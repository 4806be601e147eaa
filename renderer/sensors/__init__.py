"""The sensor pipeline: loop-detector events -> enriched, day-partitioned tables -> exports.

Stages, one module each:

- :mod:`.files`, :mod:`.staging`, :mod:`.validate`, :mod:`.ingest`: CSV files (gzip fine, a
  folder or an ``s3://`` prefix) -> ``sensors_raw`` (partitioned by UTC day), with a ledger
  (``sensors_files``: a file version ingested twice is a no-op), rejected rows with file, line
  and reason (``sensors_rejects``) and the days whose enrichment changes (``sensors_days``);
- :mod:`.enrich`: one UTC day -> ``sensors_enriched`` (partitioned by day): by default the C
  kernel (:mod:`.enrich_c`, ``ext/sensors.c``; twin :mod:`.enrich_py`) over binary COPY
  between ``renderer.sensors_enrich_begin`` and ``_end``, or with ``sensors_enrich_engine =
  "sql"`` one bulk SQL statement of RANGE windows (``renderer.sensors_enrich_day``);
- :mod:`.day`: the work-queue side: one ``sensors-day`` item per day, and the fan-in "every
  day of the run done" -> ``sensors-export``;
- :mod:`.export`: Hive-style ``year=/month=/day=`` Parquet or CSV to a folder or a store;
- :mod:`.query`: one detector's enriched rows between two instants.

:mod:`.profile` declares the pipeline on the engine (stages, fan-in, runs, batch).
Importing this package imports none of them (the engine imports :mod:`.profile` by name).
"""
