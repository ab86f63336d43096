"""The CLI builds only the subcommand it runs; what a person sees is the same as with the whole app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from borgwatch.cli import app, app_for
from borgwatch.entry import CONFIG_ENV, run_args

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


# -- `borgwatch run`, read without typer (borgwatch/entry.py) ------------------------------------------------

RUN_LINES = [
    ["run", "home", "-c", "CFG"],
    ["run", "--json", "--config", "CFG", "home", "other"],
    ["run", "--config=CFG", "nosuch"],
    ["run", "-c", "CFG"],
    ["run", "--all", "-c", "CFG", "--json"],
    ["run", "home"],  # the config from BORGWATCH_CONFIG, or the default when it is empty
]


def refused_config(tmp_path: Path) -> Path:
    """Two jobs whose runs are refused at once (state_dir is a file): each job named makes its own line."""
    (tmp_path / "not-a-dir").write_text("")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'state_dir = "{tmp_path / "not-a-dir"}"\ntextfile_dir = "{tmp_path}"\n[jobs.home]\n'
                   'repository = "/r"\npaths = ["/src"]\n[jobs.other]\nrepository = "/r"\npaths = ["/s"]\n')
    return cfg


@pytest.mark.parametrize("env_config", ["CFG", ""])
@pytest.mark.parametrize("line", RUN_LINES)
def test_a_run_command_line_means_what_typer_reads_in_it(tmp_path: Path, line: list[str], env_config: str) -> None:
    cfg = str(refused_config(tmp_path))
    args = [a.replace("CFG", cfg) for a in line]
    assert run_args(args) is not None  # the fast path takes it
    env = {**os.environ, CONFIG_ENV: env_config.replace("CFG", cfg)}
    typer_way = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['borgwatch', *sys.argv[1:]]; "
                                "from borgwatch.cli import main; main()", *args], capture_output=True, text=True,
                               env=env)
    fast_way = subprocess.run([sys.executable, "-m", "borgwatch", *args], capture_output=True, text=True, env=env)
    assert (fast_way.returncode, fast_way.stdout, fast_way.stderr) == (
        typer_way.returncode, typer_way.stdout, typer_way.stderr)
    assert fast_way.returncode != 0 and fast_way.stderr


@pytest.mark.parametrize("args", [
    ["run", "--help"], ["run", "-c"], ["run", "-c", "--json", "home"], ["run", "-cFILE", "home"], ["run", "--bogus"],
    ["run", "--", "home"], ["run", "home", "-c", "a", "--config", "b"], ["run", "--json", "--json"], ["run", ""],
    ["run", "--config="], ["--version", "run"], ["status"], [],
])
def test_anything_else_is_left_to_typer(args: list[str]) -> None:
    assert run_args(args) is None


def test_a_run_never_imports_typer(tmp_path: Path) -> None:
    cfg = refused_config(tmp_path)
    probe = ("import atexit, sys; atexit.register(lambda: print(sorted(m for m in sys.modules if 'typer' in m)));"
             "sys.argv = ['borgwatch', 'run', 'home', '-c', sys.argv[1]]; from borgwatch.entry import main; main()")
    out = subprocess.run([sys.executable, "-c", probe, str(cfg)], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
    assert "home: state_dir" in out.stderr  # it did run (and was refused: state_dir is a file)
