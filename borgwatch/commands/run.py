"""`borgwatch run JOB…|--all`: one run per job, one after another; a failure in one never stops the next."""

from __future__ import annotations

from borgwatch.commands import console
from borgwatch.config.load import load_config
from borgwatch.config.schema import Config
from borgwatch.errors import EXIT_ERROR, ConfigError, UserError
from borgwatch.run.session import RunOptions, run_job


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
