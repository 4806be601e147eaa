"""Settings: defaults, renderer.toml, environment, masking."""

from pathlib import Path

import pytest

from renderer import config
from renderer.errors import ConfigError


def test_defaults_put_store_under_home(tmp_path: Path) -> None:
    s = config.load({"RENDERER_HOME": str(tmp_path)})
    assert s.home == tmp_path
    assert s.store_url == (tmp_path / "store").as_uri()
    assert s.database_url is None
    assert s.sources == {"home": "RENDERER_HOME"}


def test_toml_then_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "renderer.toml"
    path.write_text('storage = "s3://bucket/prefix"\n[traffic]\nmin_count = 3\nafter = "keep"\n')
    env = {"RENDERER_CONFIG": str(path), "RENDERER_TRAFFIC_MIN_COUNT": "5"}
    s = config.load(env)
    assert s.storage == "s3://bucket/prefix"
    assert s.traffic_after == "keep"
    assert s.traffic_min_count == 5
    assert s.sources["traffic_min_count"] == "RENDERER_TRAFFIC_MIN_COUNT"
    assert s.sources["traffic_after"] == str(path)


def test_unknown_toml_setting_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "renderer.toml"
    path.write_text("[traffic]\nmin_cuont = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'traffic_min_cuont'"):
        config.load({"RENDERER_CONFIG": str(path)})


def test_bad_number_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"processes.*not a valid"):
        config.load({"RENDERER_PROCESSES": "many"})


def test_secrets_are_masked() -> None:
    s = config.load({
        "RENDERER_DATABASE_URL": "postgresql://bob:hunter2@db.example/renderer",
        "RENDERER_WEB_SECRETS": "s3cret,0ther",
        "RENDERER_STORAGE": "s3://bucket/p",
    })
    shown = s.masked()
    assert "hunter2" not in str(shown) and "s3cret" not in str(shown)
    assert shown["database_url"] == "postgresql://bob:***@db.example/renderer"
    assert shown["web_secrets"] == "***"
    assert shown["store_url"] == "s3://bucket/p"


# --- validation: every setting refuses nonsense, naming itself and its source ---------------

@pytest.mark.parametrize("var,value,message", [
    ("RENDERER_NOTIFY", "ture", r"notify = 'ture' \(from RENDERER_NOTIFY\) is not a valid boolean"),
    ("RENDERER_TRAFFIC_AFTER", "bogus", r"traffic_after .* must be one of archive, delete, keep"),
    ("RENDERER_PROCESSES", "-3", r"processes = '-3' .* must be a number >= 0"),
    ("RENDERER_WEB_PORT", "99999", r"web_port .* must be a number from 1 to 65535"),
    ("RENDERER_WEB_PORT", "0", r"web_port"),
    ("RENDERER_DB_PORT", "70000", r"db_port"),
    ("RENDERER_LEASE_SECONDS", "0", r"lease_seconds"),
    ("RENDERER_POLL_SECONDS", "0", r"poll_seconds .* must be a number > 0"),
    ("RENDERER_POLL_SECONDS", "nan", r"poll_seconds"),
    ("RENDERER_QUEUE_RETENTION_DAYS", "-1", r"queue_retention_days"),
    ("RENDERER_TRAFFIC_MIN_COUNT", "0", r"traffic_min_count"),
    ("RENDERER_TRAFFIC_MAX_LEVEL", "3", r"traffic_max_level .* from 0 to 2"),
    ("RENDERER_TRAFFIC_REFERENCE_WEEKS", "0", r"traffic_reference_weeks"),
    ("RENDERER_WEB_REPLAY_SECONDS", "0", r"web_replay_seconds"),
    ("RENDERER_WEB_MAX_BODY", "-5", r"web_max_body"),
    ("RENDERER_STORAGE", "ftp://host/x", r"storage .* must be a path or a file:// / s3:// URL"),
    ("RENDERER_TRAFFIC_SOURCE", "gs://b/p", r"traffic_source"),
    ("RENDERER_SENSORS_EXPORT", "http://x/y", r"sensors_export"),
    ("RENDERER_DATABASE_URL", "mysql://u@h/db", r"database_url"),
])
def test_nonsense_is_refused(var: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        config.load({var: value})
    assert "\n" not in str(caught.value)
    assert f"fix {var}" in str(caught.value)


def test_a_bad_toml_value_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "renderer.toml"
    path.write_text("[web]\nport = 99999\n")
    with pytest.raises(ConfigError, match=rf"web_port = 99999 \(from {path}\)"):
        config.load({"RENDERER_CONFIG": str(path)})
    path.write_text("notify = 1.5\nprocesses = 2.5\n")
    with pytest.raises(ConfigError, match="not a valid"):
        config.load({"RENDERER_CONFIG": str(path)})


@pytest.mark.parametrize("text,value", [("1", True), ("yes", True), ("On", True), ("TRUE", True),
                                        ("0", False), ("no", False), ("off", False),
                                        ("false", False)])
def test_booleans_are_spelled_one_of_eight_ways(text: str, value: bool) -> None:
    assert config.load({"RENDERER_NOTIFY": text}).notify is value


def test_sensible_values_pass(tmp_path: Path) -> None:
    s = config.load({"RENDERER_PROCESSES": "0", "RENDERER_WEB_PORT": "65535",
                     "RENDERER_TRAFFIC_AFTER": "keep", "RENDERER_STORAGE": str(tmp_path),
                     "RENDERER_DATABASE_URL": "postgres://u@h/db",
                     "RENDERER_TRAFFIC_SOURCE": "s3://b/p"})
    assert s.web_port == 65535 and s.traffic_after == "keep"


def test_every_setting_has_a_type_the_loader_knows() -> None:
    for f in config.dataclasses.fields(config.Settings):
        if f.name != "sources":
            assert str(f.type).split(" ")[0] in {"str", "int", "float", "bool", "Path"}, f.name


def test_the_traffic_after_choices_are_the_pipelines() -> None:
    from renderer.traffic.layout import AFTER_CHOICES

    assert config.TRAFFIC_AFTER == AFTER_CHOICES


def test_effective_values_are_the_ones_in_force(tmp_path: Path) -> None:
    s = config.load({"RENDERER_HOME": str(tmp_path), "RENDERER_PROCESSES": "0"})
    shown = s.effective()
    assert shown["processes"] == s.worker_processes > 0
    assert shown["storage"] == (tmp_path / "store").as_uri()
    assert config.load({"RENDERER_PROCESSES": "3"}).effective()["processes"] == 3
