"""One module per subcommand. Each takes plain arguments and returns an exit status; the CLI (Typer)
only parses arguments and calls them through ``exit_on_user_error``."""

from __future__ import annotations

from borgwatch.errors import EXIT_ERROR, UserError


def exit_on_user_error(func, *args, **kwargs) -> int:  # noqa: ANN001
    """Run a command; a UserError becomes one line on stderr and its exit code (no traceback)."""
    try:
        return func(*args, **kwargs)
    except UserError as exc:
        _problem(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _problem("interrupted")
        return 130
    except OSError as exc:
        _problem(f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "))
        return EXIT_ERROR


def _problem(text: str) -> None:
    from borgwatch.commands.console import problem
    problem(text)
