"""Baseline: the whole schema as of revision 0010, built from the canonical definitions.

Revisions 0001..0009 and the first 0010 were squashed into this one, which keeps the revision
id 0010: a database already at 0010 has exactly this schema and needs nothing. A database
at 0001..0009 upgrades with the previous release first (its migrations reach 0010), then with
this one.

Every object comes from ``sql/schema/<area>.sql`` by name (``schema.apply``), as it was at
this revision: a definition that a later migration replaces or drops moves to
``sql/schema/retired/`` as ``name@0010`` (or a later revision), so this list keeps building
what it built (sql/schema/README.md).

Revision ID: 0010
Revises:
"""

from alembic import op

from renderer import schema

revision = "0010"
down_revision = None
branch_labels = None
depends_on = None

NAMES = [
    # base
    "postgis", "renderer_schema",
    # queue
    "work_queue", "work_queue_kind_key", "work_queue_claim", "work_queue_set_pending",
    "work_queue_running", "work_queue_parked", "queue_sets", "queue_kinds",
    "queue_attempts", "queue_attempts_item", "queue_counts", "queue_count_deltas",
    "queue_rates", "queue_groups", "queue_rules", "queue_workers",
    "queue_timing_deltas", "queue_timings", "queue_target_state", "queue_backoff",
    "queue_max_attempts", "queue_backoff_base", "queue_timing_bucket",
    "queue_enqueue_many", "queue_enqueue", "queue_claim", "queue_claim_next",
    "queue_lock", "queue_heartbeat", "queue_complete", "queue_complete_one",
    "queue_reject", "queue_fail", "queue_fail_one", "queue_finish", "queue_release",
    "queue_reap", "queue_fire", "queue_add_rules", "queue_add_rule", "queue_on_insert",
    "queue_on_update", "queue_on_delete", "work_queue_counts_insert",
    "work_queue_counts_update", "work_queue_counts_delete", "queue_rollup",
    "queue_rollup_timings", "queue_maintain", "queue_oldest_pending", "queue_status",
    "queue_recount", "queue_retry", "queue_prune", "queue_create_set",
    "queue_pause_set", "queue_resume_set", "queue_cancel_set",
    # schedules
    "schedules",
    # traffic
    "traffic_duration_seconds", "traffic_level0_index", "traffic_prevalence",
    "traffic_histograms", "traffic_histograms_tile", "traffic_histogram_partition",
    "traffic_histogram_weeks", "traffic_segment_length_reports",
    "traffic_segment_length_reports_tile", "traffic_segment_lengths",
    "traffic_segment_lengths_insert", "traffic_segment_lengths_insert_trigger",
    "traffic_segments", "traffic_segments_tile", "traffic_files",
    "traffic_files_prefix", "traffic_rejects", "traffic_rejects_file", "traffic_speeds",
    "traffic_speeds_compression", "traffic_speeds_tile", "traffic_speed_tiles",
    "traffic_speed_tiles_week", "traffic_reference", "traffic_reference_tile",
    "traffic_reference_tiles", "traffic_coverage_state", "traffic_coverage_geojson",
    # sensors
    "sensors_files", "sensors_files_key", "sensors_rejects", "sensors_rejects_file",
    "sensors_raw", "sensors_enriched", "sensors_days", "sensors_runs",
    "sensors_runs_unexported", "sensors_partition", "sensors_day_partition",
    "sensors_raw_partition", "sensors_enriched_ddl", "sensors_enrich_day",
    # web
    "api_tokens", "api_tokens_active_name", "web_seen_signatures",
    "web_seen_signatures_seen_at",
]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)
    # DATA, NOT SCHEMA, kept only because tests/test_schedules.py expects the default
    # schedules right after migrating: a copy of renderer.schedules.DEFAULTS. Remove it (and
    # that test's expectation) once the engine adds each profile's schedules at scheduler
    # start; an existing database keeps its rows either way.
    op.execute("""
        INSERT INTO schedules (name, cron, kind, key) VALUES
            ('traffic-submit', '*/5 * * * *', 'traffic-submit', 'traffic-submit'),
            ('traffic-speedtiles', '0 2 * * 1', 'traffic-schedule', 'traffic-schedule'),
            ('queue-prune', '30 3 * * *', 'queue-prune', 'queue-prune')
    """)


def downgrade() -> None:
    # Everything this revision made: relations (their indexes, triggers, partitions and
    # identity sequences go with them), the renderer schema and its functions, PostGIS.
    for kind, name in reversed(schema.relations(NAMES, as_of=revision)):
        op.execute(f"DROP {kind} IF EXISTS {name} CASCADE")
    op.execute("DROP SCHEMA IF EXISTS renderer CASCADE")
    op.execute("DROP EXTENSION IF EXISTS postgis")
