"""Command implementations behind the CLI: each takes plain arguments and returns an exit status."""

from __future__ import annotations

import time
from pathlib import Path

from borgwatch import console
from borgwatch.config.load import load_config
from borgwatch.config.schema import Config
from borgwatch.errors import EXIT_ERROR, ConfigError, UserError
from borgwatch.lifecycle import RunMarker
from borgwatch.lock import JobLock
from borgwatch.runner import RunOptions, run_job
from borgwatch.state import load_state


def select_jobs(config: Config, names: list[str], all_jobs: bool) -> list[str]:
    if all_jobs:
        if not config.jobs:
            raise ConfigError(f"{config.source}: no [jobs.NAME] table: add a job to run")
        return list(config.jobs)
    if not names:
        raise UserError("name the job(s) to run, or pass --all")
    unknown = [n for n in names if n not in config.jobs]
    if unknown:
        raise ConfigError(f"job {unknown[0]!r} is not in {config.source}; configured jobs: "
                          f"{', '.join(config.jobs) or 'none'}")
    return names


def _route_library_warnings() -> None:
    """Warnings of borgwatch's own modules (e.g. a sink dropping lines) as one plain line on stderr."""
    import logging
    logger = logging.getLogger("borgwatch")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("borgwatch: %(message)s"))
        handler.setLevel(logging.WARNING)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def run_command(config_path: str | None, names: list[str], all_jobs: bool, as_json: bool) -> int:
    config = load_config(config_path)
    _route_library_warnings()
    jobs = select_jobs(config, names, all_jobs)
    worst = 0
    summaries = []
    tty = console.is_tty() and not as_json
    for name in jobs:
        out = console.Console(name, tty)
        options = RunOptions(on_progress=out.progress if tty else None, on_message=out.message)
        try:
            outcome = run_job(config, name, options)
        except UserError as exc:  # refused before the run began (lock held, state dir unusable)
            console.problem(f"{name}: {exc}")
            worst = worst or exc.exit_code
            continue
        except OSError as exc:  # state_dir full or unwritable before the run began: the next job still runs
            console.problem(f"{name}: cannot prepare the run in {config.state_dir}: {exc.strerror or exc}; free "
                            "space there or make it writable")
            worst = worst or EXIT_ERROR
            continue
        except Exception as exc:  # noqa: BLE001 - a defect in one job must not stop `run --all`
            # the message itself may quote a secret: only its type is printed
            console.problem(f"{name}: borgwatch failed with an internal error ({type(exc).__name__}); the "
                            "other jobs still run — please report this")
            worst = worst or EXIT_ERROR
            continue
        for text in outcome.problems:
            console.problem(f"{name}: {text}")
        if as_json:
            summaries.append(outcome.result.to_dict(with_events=False))
        elif tty:
            out.summary(outcome.result)
        worst = worst or outcome.exit_code
    if as_json:
        console.print_json(summaries[0] if len(summaries) == 1 else summaries)
    return worst


def status_rows(config: Config, problems: list[str] | None = None) -> list[dict]:
    """``problems`` receives one line per job whose state cannot be read (its row says "unknown")."""
    rows = []
    for name in config.jobs:
        state, warning = load_state(Path(config.state_dir), name)
        if warning and problems is not None:
            problems.append(f"{name}: {warning.split('; ')[0]}; its last run is unknown until the next run "
                            "records one")
        last = state.previous_result()
        running = JobLock(Path(config.state_dir), name).held()
        rows.append({
            "unknown": bool(warning),
            "job": name,
            "running": running,
            # a run marker nobody holds the lock for: that run was killed before it recorded itself
            "killed": not running and RunMarker(Path(config.state_dir), name).path.is_file(),
            "status": last.status if last else None,
            "exit_code": last.exit_code if last else None,
            "started_at": last.started_at if last else None,
            "duration_seconds": last.duration_seconds if last else None,
            "last_success_at": state.last_success_at,
            "last_success_age_seconds": (time.time() - state.last_success_at) if state.last_success_at else None,
            "max_age_seconds": last.max_age_seconds if last else None,
            "archive": last.archive_name if last else None,
            "dataset": last.dataset.as_counts() if last and last.dataset else None,
            "error": last.error if last else None,
        })
    return rows


def status_command(config_path: str | None, as_json: bool) -> int:
    config = load_config(config_path)
    problems: list[str] = []
    rows = status_rows(config, problems)
    if as_json:
        console.print_json(rows)
    else:
        print(console.status_table(rows))
    for text in problems:
        console.problem(text)
    return EXIT_ERROR if problems else 0


def check_config_command(config_path: str | None) -> int:
    config = load_config(config_path)
    print(f"{config.source}: OK ({len(config.jobs)} job(s): {', '.join(config.jobs) or 'none'})")
    return 0


def exit_on_user_error(func, *args, **kwargs) -> int:  # noqa: ANN001
    """Run a command; a UserError becomes one line on stderr and its exit code (no traceback)."""
    try:
        return func(*args, **kwargs)
    except UserError as exc:
        console.problem(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        console.problem("interrupted")
        return 130
    except OSError as exc:
        console.problem(f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "))
        return EXIT_ERROR
