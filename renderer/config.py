"""All settings in one place: defaults, then ``renderer.toml``, then ``RENDERER_*`` variables.

A setting ``traffic_min_count`` is ``min_count`` under ``[traffic]`` in the TOML file and
``RENDERER_TRAFFIC_MIN_COUNT`` in the environment; the environment wins. Settings are read
once per process into a frozen :class:`Settings`; nothing else reads the environment for
them.

Every value is checked as it is read: its type from the field's annotation (a bool is one of
``1 0 true false yes no on off``, anything else is an error, not false), then the field's
rule in ``RULES`` if it has one. A bad value is a :class:`ConfigError` of one line naming the
setting, the value and where it came from. A new setting is one line in :class:`Settings`
(plus one in ``RULES`` when its type alone does not say what is valid).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from renderer.errors import ConfigError
from renderer.extracts.regions import regions_ok

SECRET_FIELDS = frozenset({"web_secrets", "database_url", "callbacks_secret"})


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
    pooler: str = ""  # "pgbouncer": database_url is PgBouncer in transaction pooling
    db_listen: str = "127.0.0.1"  # embedded cluster with a port: comma-separated addresses
    db_tls: bool = False  # embedded cluster: TLS with its own CA (renderer db url --for-host)
    db_tls_names: str = ""  # extra host names/addresses in its certificate, comma-separated
    queue_retention_days: int = 7
    traffic_source: str = ""  # reporter files root (folder or s3:// URL) for hooks and schedules
    traffic_after: str = "archive"
    traffic_allowed_sources: str = ""  # comma-separated roots POST /api/runs may also submit
    traffic_dedupe_by_content: bool = False  # skip a file whose content the prefix has
    follow_symlinks: bool = False  # follow links in local sources that stay inside the root
    traffic_min_count: int = 1
    traffic_max_level: int = 1
    traffic_speedtile_engine: str = "c"  # the speed-tile build: "c" (binary COPY + C) or "sql"
    traffic_speedtile_parts: int = 2  # c engine: backends reading a tile-week at once
    traffic_speedtile_sort: str = "c"  # c engine: who sorts the rows, "c" or "server"
    traffic_speedtile_work_mem: str = ""  # c engine, server sort: each part's sort memory
    traffic_reference_weeks: int = 52
    sensors_export: str = ""  # sensor export root; empty means the store, under sensors/
    sensors_enrich_engine: str = "c"  # the day enrichment: "c" (binary COPY + C) or "sql"
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    web_secrets: str = ""  # comma-separated HMAC secrets, several for rotation
    web_replay_seconds: int = 300
    web_max_body: int = 1_000_000
    web_public_url: str = ""  # base of links sent to callbacks; empty: http://host:port
    queue_target_drain_seconds: float = 300.0  # autoscaling: drain what is pending this fast
    callbacks_allowed_hosts: str = ""  # comma-separated host[:port] a run may name as callback
    callbacks_secret: str = ""  # HMAC secret signing the status posted back (never logged)
    callbacks_timeout: float = 10.0  # seconds a callback POST may take
    extracts_regions: str = ""  # "name=minlon,minlat,maxlon,maxlat; ..."; empty: continents
    extracts_weeks: int = 4  # speed-tile weeks an extract carries (the latest ones)
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def store_url(self) -> str:
        return self.storage or (self.home / "store").as_uri()

    @property
    def worker_processes(self) -> int:
        return self.processes or 2 * (os.cpu_count() or 1)

    def require_direct(self, command: str) -> None:
        """Refuse ``command`` (one that keeps temporary tables across transactions) when the
        URL is PgBouncer in transaction pooling: each transaction may get another session."""
        if self.pooler == "pgbouncer":
            raise ConfigError(
                f"{command} keeps temporary tables across transactions and cannot run through "
                "PgBouncer (RENDERER_POOLER=pgbouncer)",
                "run it with RENDERER_DATABASE_URL pointing at PostgreSQL itself and "
                "RENDERER_POOLER unset")

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

    def effective(self) -> dict[str, Any]:
        """:meth:`masked` with the values in force where a setting means "work it out":
        ``processes`` the worker count, ``storage`` the store URL (also ``store_url``)."""
        shown = self.masked()
        shown["processes"] = self.worker_processes
        shown["storage"] = shown["store_url"]
        return shown


# -- rules beyond the type: name -> (test, what a valid value is) -------------------------------
Rule = tuple[Callable[[Any], bool], str]


def _between(lo: float, hi: float | None = None) -> Rule:
    if hi is None:
        return (lambda v: v >= lo), f"a number >= {lo:g}"
    return (lambda v: lo <= v <= hi), f"a number from {lo:g} to {hi:g}"


def _one_of(*choices: str) -> Rule:
    return (lambda v: v in choices), "one of " + ", ".join(choices)


def _url(*schemes: str) -> Rule:
    return ((lambda v: not v or "://" not in v or urlsplit(v).scheme.lower() in schemes),
            "a path or a " + " / ".join(f"{s}://" for s in schemes) + " URL")


def _hosts_ok(v: str) -> bool:
    return all(_HOST.fullmatch(h.strip()) for h in v.split(",") if h.strip())


_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def _postgres_url(v: str | None) -> bool:
    return v is None or urlsplit(v).scheme in ("postgresql", "postgres")


# The traffic pipeline's choices (renderer.traffic.layout.AFTER_CHOICES; the engine imports
# no pipeline, a test holds the two equal).
TRAFFIC_AFTER = ("archive", "delete", "keep")

RULES: dict[str, Rule] = {
    "database_url": (_postgres_url, "a postgresql://user@host/db URL"),
    "storage": _url("file", "s3"),
    "db_port": _between(0, 65535),
    "processes": _between(0),
    "lease_seconds": _between(1),
    "poll_seconds": ((lambda v: v > 0), "a number > 0"),
    "queue_retention_days": _between(0),
    "pooler": ((lambda v: v in ("", "pgbouncer")), "empty (a direct connection) or pgbouncer"),
    "db_listen": ((lambda v: bool(v.strip()) and "'" not in v and " " not in v.strip()),
                  "comma-separated addresses to listen on, e.g. 127.0.0.1,10.0.0.5"),
    "db_tls_names": ((lambda v: "'" not in v and "\n" not in v),
                     "comma-separated host names or addresses"),
    "traffic_source": _url("file", "s3"),
    "traffic_after": _one_of(*TRAFFIC_AFTER),
    "traffic_min_count": _between(1),
    "traffic_max_level": _between(0, 2),
    "traffic_reference_weeks": _between(1),
    "traffic_speedtile_parts": _between(1, 16),
    "traffic_speedtile_sort": _one_of("c", "server"),
    "traffic_speedtile_work_mem": ((lambda v: re.fullmatch(r"([1-9][0-9]*(kB|MB|GB)?)?", v)
                                    is not None), "empty or a size such as 64MB"),
    "sensors_export": _url("file", "s3"),
    "sensors_enrich_engine": _one_of("c", "sql"),
    "web_port": _between(1, 65535),
    "web_replay_seconds": _between(1),
    "web_max_body": _between(1),
    "web_public_url": ((lambda v: not v or urlsplit(v).scheme in ("http", "https")),
                       "an http:// or https:// URL"),
    "queue_target_drain_seconds": ((lambda v: v > 0), "a number of seconds > 0"),
    "callbacks_allowed_hosts": (_hosts_ok, "comma-separated host or host:port entries"),
    "callbacks_timeout": _between(0.1, 50),  # under the notify stage's 60 s time limit
    "extracts_regions": (regions_ok, "name=minlon,minlat,maxlon,maxlat entries separated "
                                     "by ';' (names: lowercase letters, digits, '-', '_')"),
    "extracts_weeks": _between(1, 520),
}


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


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _typed(kind: str, value: Any) -> Any:
    """``value`` as the annotation ``kind`` says; ValueError when it is not one."""
    if "Path" in kind:
        return Path(os.path.expanduser(str(value)))
    if value in ("", None) and "None" in kind:
        return None
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in _TRUE | _FALSE:
            raise ValueError("not a boolean")
        return text in _TRUE
    if kind.startswith("int"):
        if isinstance(value, (bool, float)):
            raise ValueError("not an integer")
        return int(value)
    if kind.startswith("float"):
        if isinstance(value, bool):
            raise ValueError("not a number")
        return float(value)
    return str(value)


_KIND_NAMES = {"bool": "boolean (true/false, 1/0, yes/no, on/off)", "int": "whole number",
               "float": "number"}


def _coerce(name: str, kind: Any, value: Any, source: str = "default") -> Any:
    kind = str(kind)
    try:
        typed = _typed(kind, value)
    except ValueError as exc:
        what = _KIND_NAMES.get(kind.split(" ")[0], kind)
        raise ConfigError(f"setting {name} = {value!r} (from {source}) is not a valid {what}",
                          f"fix {source}") from exc
    rule = RULES.get(name)
    if rule is not None and typed is not None and not rule[0](typed):
        raise ConfigError(f"setting {name} = {value!r} (from {source}) must be {rule[1]}",
                          f"fix {source}")
    return typed


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
    coerced = {k: _coerce(k, fields[k].type, v, sources[k]) for k, v in values.items()}
    return Settings(**coerced, sources=sources)
