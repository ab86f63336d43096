"""The ``borgwatch`` command: ``borgwatch run JOB… [--all] [-c FILE] [--json]`` goes straight to the run;
anything else (every other subcommand, --help, an option typed differently) goes through the Typer app in
``cli.py``, which alone defines the command line. The run is what a timer starts every night: typer's
imports and its click command were ~15 ms of the ~130 ms borgwatch spent before borg started (measured
with ``bench.fixed_cost``), and the run's command line is simple enough to read exactly as typer would."""

from __future__ import annotations

import gc
import os
import sys

CONFIG_ENV = "BORGWATCH_CONFIG"  # cli.py's ConfigOpt envvar


def run_args(args: list[str]) -> tuple[str | None, list[str], bool, bool] | None:
    """``run``'s (config, jobs, --all, --json) when ``args`` is a run command line typer reads the same way;
    None for anything else (typer then decides, its errors included)."""
    if not args or args[0] != "run":
        return None
    config: str | None = None
    jobs: list[str] = []
    flags: set[str] = set()
    rest = iter(args[1:])
    for arg in rest:
        if arg in ("--json", "--all") and arg not in flags:
            flags.add(arg)
        elif arg in ("-c", "--config") and config is None:
            config = next(rest, "")
            if not config or config.startswith("-"):
                return None
        elif arg.startswith("--config=") and config is None and len(arg) > len("--config="):
            config = arg.removeprefix("--config=")
        elif arg and not arg.startswith("-"):
            jobs.append(arg)
        else:  # --help, --, -cFILE, a repeated option, anything unknown
            return None
    return config or os.environ.get(CONFIG_ENV) or None, jobs, "--all" in flags, "--json" in flags


def main() -> int:
    parsed = run_args(sys.argv[1:])
    if parsed is None:
        from borgwatch.cli import main as typer_main

        typer_main()  # exits with the command's status
        return 0
    from borgwatch.commands import exit_on_user_error
    from borgwatch.commands.run import run_command

    try:
        return exit_on_user_error(run_command, *parsed)
    finally:
        gc.freeze()  # as cli.main does: the interpreter's teardown then skips what the run left
