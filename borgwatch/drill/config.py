"""``[jobs.NAME.drill]``: the drill table (same field helpers as ``config/schema.py``, so the loader
validates it and the reference documents it once JobConfig carries ``drill: DrillConfig | None``)."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from borgwatch.config.fields import opt

if TYPE_CHECKING:  # config/schema.py will import DrillConfig from here: no import cycle at run time
    from borgwatch.config.schema import Config

COVERAGE_WINDOW_SECONDS = 30 * 86400


@dataclass
class DrillConfig:
    every: str = opt("7d", "Run a drill after a backup when the last drill is older than this.", kind="duration")
    max_age: str = opt("8d", "No successful drill for this long fires BackupRestoreDrillStale.",
                       kind="duration")
    max_files: int = opt(200, "Most files restored and verified per drill.", min=1)
    max_bytes: int = opt(256 << 20, "Most bytes restored per drill (bounds the temporary directory).", min=1)
    sample_percent: float = opt(5.0, "Share of the archive's files sampled per drill (before max_files).",
                                gt=0, max=100)
    seed: int | None = opt(None, "Seed of the sample choice (default: a new one per drill, recorded).", min=0)
    dry_run_archive: bool = opt(False, "Also `borg extract --dry-run` the whole archive (reads every chunk).")
    paths: list[str] = opt([], "Source paths restored in full (within max_bytes) for a real restore time.")
    temp_dir: str | None = opt(None, "Where the private restore directory is made (default: the system's "
                                     "temporary directory); never inside the job's paths.", kind="path")


@dataclass(frozen=True)
class DrillPlan:
    """A drill resolved once from the config: durations parsed, the sample's size known."""

    every_seconds: float
    max_age_seconds: float
    max_files: int
    max_bytes: int
    sample_percent: float
    seed: int | None
    dry_run_archive: bool
    paths: tuple[str, ...]
    temp_dir: str | None

    def sample_size(self, archive_files: int) -> int:
        return min(self.max_files, max(1, math.ceil(archive_files * self.sample_percent / 100)))


def plan(cfg: DrillConfig) -> DrillPlan:
    from borgwatch.config.load import parse_duration
    return DrillPlan(parse_duration(cfg.every), parse_duration(cfg.max_age), cfg.max_files, cfg.max_bytes,
                     cfg.sample_percent, cfg.seed, cfg.dry_run_archive, tuple(cfg.paths), cfg.temp_dir)


def drill_configs(config: Config) -> dict[str, DrillConfig | None]:
    """Each job's drill table: from JobConfig once the schema carries it, else read from the config file
    (the schema rejects the table until then, see ``load_without_drill``)."""
    out: dict[str, DrillConfig | None] = {}
    raw = None
    for name, job in config.jobs.items():
        if hasattr(job, "drill"):
            out[name] = job.drill
            continue
        if raw is None:
            raw = _raw_tables(config.source)
        table = raw.get(name)
        out[name] = _build_drill(table, config.source, name) if table is not None else None
    return out


def load_drill_config(explicit: str | None) -> Config:
    """The config; while the schema rejects ``[jobs.*.drill]`` (the seam until JobConfig carries it), the
    file is parsed with those tables set aside and ``drill_configs`` reads them."""
    from borgwatch.config import load
    from borgwatch.config.schema import Config
    from borgwatch.errors import ConfigError

    try:
        return load.load_config(explicit)
    except ConfigError as exc:
        if ".drill: unknown key" not in str(exc):
            raise
    path = load.config_path(explicit)
    data = _loads(path.read_text(encoding="utf-8"), str(path))
    for job in (data.get("jobs") or {}).values():
        if isinstance(job, dict):
            job.pop("drill", None)
    config = load._build(Config, data, str(path), "")
    config.source = str(path)
    load._check(config, str(path))
    return config


def _raw_tables(source: str) -> dict[str, Any]:
    try:
        data = _loads(Path(source).read_text(encoding="utf-8"), source)
    except OSError:
        return {}
    jobs = data.get("jobs") or {}
    return {name: job["drill"] for name, job in jobs.items() if isinstance(job, dict) and "drill" in job}


def _loads(text: str, source: str) -> dict[str, Any]:
    from borgwatch.errors import ConfigError
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {str(exc)[:200]}; fix the syntax") from None


def _build_drill(table: Any, source: str, job: str) -> DrillConfig:
    from borgwatch.config import load
    return load._build(DrillConfig, table, source, f"jobs.{job}.drill.")
