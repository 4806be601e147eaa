"""Vessel tracks: position reports (AIS, satellite) -> day-partitioned PostgreSQL -> queries by
identifier, bounding box, time range and sampling in any mix, and a static geohash index.

Modules, one concern each:

- :mod:`.formats`: parsers for CSV, NDJSON, AIS NMEA (``pyais``) and AMSA BinaryFixes, and
  the BinaryFixes encoder;
- :mod:`.ingest`: files -> ``tracks_reports`` with a ledger, rejects and vessel identities;
- :mod:`.query`: the any-mix query, streamed in time order, paged by a cursor token;
- :mod:`.output`: rows -> CSV, NDJSON, GeoJSON, JSON text chunks (CLI and HTTP alike);
- :mod:`.geohash_index`: the static index export as work items per (geohash prefix, day);
- :mod:`.sample`: a generator of realistic tracks;
- :mod:`.profile`: the coupling to the engine (queue kinds), the one file to adapt.
"""
