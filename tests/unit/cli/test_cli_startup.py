"""The CLI builds only the subcommand it runs; what a person sees is the same as with the whole app."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main
from typer.testing import CliRunner

from borgwatch.cli import app, app_for

NAMES = [info.name or typer.main.get_command_name(info.callback.__name__)
         for info in app.registered_commands if info.callback is not None]


def test_every_subcommand_is_found() -> None:
    assert {"run", "exec", "check-config", "config-reference", "report"} <= set(NAMES)
    for name in NAMES:
        built = typer.main.get_command(app_for([name, "--help"]))
        assert list(built.commands) == [name]  # type: ignore[attr-defined]


@pytest.mark.parametrize("args", [[name, "--help"] for name in NAMES] + [
    ["run", "--bogus"], ["run", "--all", "--json", "-c", "/nonexistent/borgwatch.toml"],
    ["kit", "no-such-asset"], ["check-config", "extra-argument"],
])
def test_a_subcommand_behaves_as_in_the_whole_app(args: list[str]) -> None:
    whole = CliRunner().invoke(app, args, prog_name="borgwatch")
    single = CliRunner().invoke(app_for(args), args, prog_name="borgwatch")
    assert (single.exit_code, single.output) == (whole.exit_code, whole.output)
    assert single.output


@pytest.mark.parametrize("args", [[], ["--help"], ["--version"], ["nosuch"], ["--version", "run"]])
def test_anything_but_a_subcommand_gets_the_whole_app(args: list[str]) -> None:
    assert app_for(args) is app


def test_the_console_entry_point_exits_with_the_command_status() -> None:
    out = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['borgwatch', 'kit', 'nope']; "
                          "from borgwatch.cli import main; main()"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown kit asset 'nope'" in out.stderr
