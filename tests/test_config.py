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
