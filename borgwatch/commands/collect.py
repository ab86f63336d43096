"""`borgwatch collect`: a cheap inventory of watched repositories, for the backup server side.

Per ``[repositories.NAME]``: archive count and newest archive time (``borg list --json``, which reads the
manifest only, so it stays fast with thousands of archives) and the repository size totals
(``borg info --json`` of the repository, not of each archive). Both take borg's shared lock with a
short ``--lock-wait``: when a backup holds the repository, collect gives up at once, marks the
repository skipped and keeps the previous values (``state_dir/inventory-NAME.json``), so it never
makes a backup wait or fail. Output: ``borgwatch-inventory-NAME.prom`` with only the ``repository``
label (the configured name, never the URL).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from borgwatch.borg import argv as borg_argv
from borgwatch.borg.env import BorgEnv, build_env
from borgwatch.borg.events import Event, LogMessage, Text, msgid_suffix
from borgwatch.borg.exitcodes import classify, is_lock_timeout, remedy
from borgwatch.borg.feature import Feature, available
from borgwatch.borg.listings import parse_archive_listing, parse_repository_info
from borgwatch.borg.process import BorgProcess
from borgwatch.borg.version import BorgVersion, detect_version, find_borg
from borgwatch.errors import EXIT_ERROR, JobLocked, UserError
from borgwatch.metrics.exposition import build_registry, write_textfile
from borgwatch.redact import Redactor
from borgwatch.store.files import atomic_write
from borgwatch.store.lock import JobLock
from borgwatch.store.state import ensure_state_dir

if TYPE_CHECKING:
    from borgwatch.config.agent import RepositoryConfig
    from borgwatch.config.schema import Config

@dataclass
class Inventory:
    repository: str  # the configured name
    status: str = "ok"  # ok | skipped (lock held by a backup) | error
    archives: int | None = None
    last_archive_at: float | None = None
    unique_bytes: int | None = None
    unique_compressed_bytes: int | None = None
    total_bytes: int | None = None
    collected_at: float | None = None  # when the values above were read (older than attempted_at if kept)
    attempted_at: float = 0.0
    duration_seconds: float = 0.0
    error: str = ""


@dataclass
class BorgAnswer:
    rc: int
    stdout: bytes
    locked: bool
    message: str  # first error text (redacted), empty on success


def inventory_path(state_dir: str | Path, name: str) -> Path:
    return Path(state_dir) / f"inventory-{name}.json"


def textfile_path(textfile_dir: str | Path, name: str) -> Path:
    return Path(textfile_dir) / f"borgwatch-inventory-{name}.prom"


def load_previous(state_dir: str | Path, name: str) -> Inventory:
    try:
        data = json.loads(inventory_path(state_dir, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Inventory(name)
    known = {f.name for f in fields(Inventory)}
    values = {k: v for k, v in data.items() if k in known} if isinstance(data, dict) else {}
    values["repository"] = name
    return Inventory(**values)


def save_inventory(state_dir: str | Path, inv: Inventory) -> None:
    path = inventory_path(state_dir, inv.repository)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(asdict(inv), sort_keys=True).encode(), 0o644)


def inventory_samples(inv: Inventory) -> list[tuple[str, dict[str, str], float]]:
    labels = {"repository": inv.repository}
    out: list[tuple[str, dict[str, str], float]] = []
    values: dict[str, float | int | None] = {
        "borgwatch_inventory_archives": inv.archives,
        "borgwatch_inventory_last_archive_timestamp_seconds": inv.last_archive_at,
        "borgwatch_inventory_unique_bytes": inv.unique_bytes,
        "borgwatch_inventory_unique_compressed_bytes": inv.unique_compressed_bytes,
        "borgwatch_inventory_total_bytes": inv.total_bytes,
        "borgwatch_inventory_collect_success": 0 if inv.status == "error" else 1,
        "borgwatch_inventory_collect_skipped": 1 if inv.status == "skipped" else 0,
        "borgwatch_inventory_collect_timestamp_seconds": inv.attempted_at,
        "borgwatch_inventory_collect_duration_seconds": inv.duration_seconds,
    }
    for name, value in values.items():
        if value is not None:
            out.append((name, dict(labels), float(value)))
    return out


def run_borg(argv: list[str], env: BorgEnv, redact: Redactor, timeout: float) -> BorgAnswer:
    errors: list[str] = []
    msgids: list[str] = []

    def on_event(event: Event) -> None:
        if isinstance(event, LogMessage):
            if event.msgid:
                msgids.append(msgid_suffix(event.msgid))
            if event.level in ("ERROR", "CRITICAL") and event.name != "borg.output.show-rc":
                errors.append(event.message)
        elif isinstance(event, Text):
            errors.append(event.text)

    run = BorgProcess(argv, env).run(on_event, timeout=timeout)
    locked = is_lock_timeout(run.returncode, msgids)
    message = ""
    if classify(run.returncode) in ("error", "interrupted"):
        first = next((e for e in errors if e.strip()), f"borg exited with rc {run.returncode}")
        hint = remedy(msgids)
        if run.timed_out:
            first = f"borg did not finish within {timeout:g} s and was stopped"
        message = redact(" ".join(first.split()))[:300] + (f"; {hint}" if hint else "")
    return BorgAnswer(run.returncode, run.stdout, locked, message)


def collect_one(config: Config, name: str, repo: RepositoryConfig, borg: str,
                version: BorgVersion | None = None) -> Inventory:
    started, t0 = time.time(), time.monotonic()
    inv = load_previous(config.state_dir, name)
    inv.status, inv.error, inv.attempted_at = "ok", "", started
    env: BorgEnv | None = None
    try:
        env = build_env(passcommand=repo.passcommand, passphrase_file=repo.passphrase_file,
                        passphrase_env=repo.passphrase_env, extra=repo.environment,
                        base_dir=config.borg_base_dir, where=f"repositories.{name}")
        redact = Redactor(env.secrets)
        listing = run_borg(borg_argv.list_archives(borg, repo.repository, repo.lock_wait, version=version),
                           env, redact, repo.timeout)
        if listing.locked:
            inv.status = "skipped"
        elif listing.message:
            inv.status, inv.error = "error", listing.message
        else:
            inv.archives, inv.last_archive_at = parse_archive_listing(listing.stdout)
            inv.collected_at = started
            if available(Feature.REPOSITORY_TOTALS, version):
                _collect_sizes(inv, borg, repo, env, redact, version)
            else:  # borg 2 keeps no size totals: absent, not zero nor an older value
                inv.unique_bytes = inv.unique_compressed_bytes = inv.total_bytes = None
    except UserError as exc:
        inv.status, inv.error = "error", str(exc)
    except (ValueError, KeyError, TypeError) as exc:  # borg printed something that is not its JSON
        inv.status, inv.error = "error", f"unexpected borg output ({type(exc).__name__}); run borg by hand"
    finally:
        if env is not None:
            env.close()
    inv.duration_seconds = time.monotonic() - t0
    return inv


def _collect_sizes(inv: Inventory, borg: str, repo: RepositoryConfig, env: BorgEnv, redact: Redactor,
                   version: BorgVersion | None) -> None:
    info = run_borg(borg_argv.info_repository(borg, repo.repository, repo.lock_wait, version=version),
                    env, redact, repo.timeout)
    if info.locked:  # a backup started between the two commands: sizes stay as they were
        inv.status = "skipped"
    elif info.message:
        inv.status, inv.error = "error", info.message
    else:
        inv.unique_bytes, inv.unique_compressed_bytes, inv.total_bytes = parse_repository_info(
            info.stdout, version)


def select(config: Config, names: list[str]) -> list[str]:
    if not config.repositories:
        raise UserError(f"no [repositories.NAME] tables in {config.source}; add one per repository to "
                        "watch (see examples/agent/collect.toml)")
    unknown = [n for n in names if n not in config.repositories]
    if unknown:
        raise UserError(f"repository {unknown[0]!r} is not in {config.source}; configured: "
                        f"{', '.join(config.repositories)}")
    return names or list(config.repositories)


def collect_command(config: Config, names: list[str], as_json: bool) -> int:
    selected = select(config, names)
    borg = find_borg(config.borg)
    version = detect_version(borg, {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})  # refuses untested
    state_dir = ensure_state_dir(Path(config.state_dir))
    results: list[Inventory] = []
    worst = 0
    for name in selected:
        lock = JobLock(state_dir, f".inventory-{name}")  # '.' cannot start a job name: no clash
        try:
            lock.acquire()
        except JobLocked:
            _problem(f"{name}: another `borgwatch collect` is collecting this repository; skipped")
            continue
        try:
            inv = collect_one(config, name, config.repositories[name], borg, version)
            if inv.status == "ok":
                save_inventory(state_dir, inv)
            write_textfile(textfile_path(config.textfile_dir, name), build_registry(inventory_samples(inv)))
        except OSError as exc:
            where = config.textfile_dir if not Path(config.textfile_dir).is_dir() else exc.filename
            _problem(f"{name}: cannot write metrics to {where}: {exc.strerror}; create textfile_dir (and "
                     "state_dir) and make them writable for borgwatch's user")
            worst = EXIT_ERROR
            continue
        finally:
            lock.release()
        results.append(inv)
        if inv.status == "error":
            _problem(f"{name}: {inv.error}")
            worst = EXIT_ERROR
    if as_json:
        print(json.dumps([asdict(r) for r in results], indent=2, sort_keys=True))
    else:
        for inv in results:
            print(summary_line(inv))
    return worst


def summary_line(inv: Inventory) -> str:
    state = {"ok": "ok", "skipped": "skipped (locked by a backup; previous values kept)",
             "error": "FAILED"}[inv.status]
    parts = [f"{inv.repository}: {state}"]
    if inv.archives is not None:
        parts.append(f"{inv.archives} archives")
    if inv.last_archive_at is not None:
        parts.append(f"newest {_age(time.time() - inv.last_archive_at)} ago")
    if inv.unique_compressed_bytes is not None:
        parts.append(f"{inv.unique_compressed_bytes / 1e9:.2f} GB stored")
    parts.append(f"{inv.duration_seconds:.2f} s")
    return ", ".join(parts)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def _problem(text: str) -> None:
    print(f"borgwatch: {text}", file=sys.stderr)

