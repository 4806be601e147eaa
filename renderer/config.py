"""All settings in one place: defaults, then ``renderer.toml``, then ``RENDERER_*`` variables.

A setting ``traffic_min_count`` is ``min_count`` under ``[traffic]`` in the TOML file and
``RENDERER_TRAFFIC_MIN_COUNT`` in the environment; the environment wins. Settings are read
once per process into a frozen :class:`Settings`; nothing else reads the environment for
them.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from renderer.errors import ConfigError

SECRET_FIELDS = frozenset({"web_secrets", "database_url"})


def _default_home() -> Path:
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(data) / "renderer"


@dataclass(frozen=True)
class Settings:
    """The effective settings; ``sources`` says where each value came from."""

    database_url: str | None = None
    home: Path = field(default_factory=_default_home)
    storage: str = ""  # empty means file://{home}/store
    db_port: int = 0  # embedded cluster: 0 = Unix socket only, no TCP
    processes: int = 0  # workers per machine: 0 = twice the cores
    lease_seconds: int = 60
    poll_seconds: float = 2.0
    notify: bool = True  # LISTEN/NOTIFY; off behind PgBouncer in transaction mode
    queue_retention_days: int = 7
    traffic_source: str = ""  # reporter files root (folder or s3:// URL) for hooks and schedules
    traffic_after: str = "archive"
    traffic_allowed_sources: str = ""  # comma-separated roots POST /api/runs may also submit
    traffic_dedupe_by_content: bool = False  # skip a file whose content the prefix has
    follow_symlinks: bool = False  # follow links in local sources that stay inside the root
    traffic_min_count: int = 1
    traffic_max_level: int = 1
    traffic_reference_weeks: int = 52
    sensors_export: str = ""  # sensor export root; empty means the store, under sensors/
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    web_secrets: str = ""  # comma-separated HMAC secrets, several for rotation
    web_replay_seconds: int = 300
    web_max_body: int = 1_000_000
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def store_url(self) -> str:
        return self.storage or (self.home / "store").as_uri()

    @property
    def worker_processes(self) -> int:
        return self.processes or 2 * (os.cpu_count() or 1)

    def masked(self) -> dict[str, Any]:
        """Settings for display, with passwords and secrets replaced by ``***``."""
        shown: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            if f.name == "database_url" and value:
                value = mask_url(value)
            elif f.name in SECRET_FIELDS and value:
                value = "***"
            shown[f.name] = str(value) if isinstance(value, Path) else value
        shown["store_url"] = mask_url(self.store_url)
        return shown


def mask_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def config_file(env: dict[str, str]) -> Path | None:
    """``$RENDERER_CONFIG``, else ``./renderer.toml`` when it exists."""
    if env.get("RENDERER_CONFIG"):
        return Path(env["RENDERER_CONFIG"])
    local = Path("renderer.toml")
    return local if local.exists() else None


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


def _coerce(name: str, kind: Any, value: Any) -> Any:
    kind = str(kind)
    try:
        if "Path" in kind:
            return Path(os.path.expanduser(str(value)))
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in {"1", "true", "yes", "on"}
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
    except ValueError as exc:
        raise ConfigError(
            f"setting {name} = {value!r} is not a valid {kind}", "fix the value"
        ) from exc
    return None if value in ("", None) and "None" in kind else str(value)


def load(env: dict[str, str] | None = None) -> Settings:
    """Read the settings from the environment and ``renderer.toml``."""
    env = dict(os.environ if env is None else env)
    fields = {f.name: f for f in dataclasses.fields(Settings) if f.name != "sources"}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = config_file(env)
    if path is not None:
        try:
            table = _flatten(tomllib.loads(path.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}", "fix or remove the file") from exc
        for key, value in table.items():
            if key not in fields:
                raise ConfigError(f"unknown setting {key!r} in {path}", "remove or rename it")
            values[key] = value
            sources[key] = str(path)
    for name in fields:
        var = f"RENDERER_{name.upper()}"
        if var in env:
            values[name] = env[var]
            sources[name] = var
    coerced = {k: _coerce(k, fields[k].type, v) for k, v in values.items()}
    return Settings(**coerced, sources=sources)
