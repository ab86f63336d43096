"""Config schema: the documented example works as written; bad input gives one clear line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from borgwatch.config.load import parse_config, parse_duration
from borgwatch.config.reference import render_markdown
from borgwatch.errors import ConfigError
from borgwatch.reference import render_metrics_markdown
from tests.conftest import BORGWATCH

ROOT = Path(__file__).resolve().parents[1]
ISSUE_EXAMPLE = '''
textfile_dir = "/var/lib/prometheus/node-exporter"
state_dir = "/var/lib/borgwatch"

[jobs.home]
repository = "/srv/borg/home"
paths = ["/home", "/etc"]
exclude = ["/home/*/.cache"]
passcommand = "cat /etc/borgwatch/home.pass"   # or: passphrase_file = "/etc/borgwatch/home.pass"
max_age = "26h"

[jobs.home.prune]
keep_daily = 7
keep_weekly = 4
'''


def test_documented_example_parses_exactly() -> None:
    config = parse_config(ISSUE_EXAMPLE, "example.toml")
    job = config.jobs["home"]
    assert job.paths == ["/home", "/etc"] and job.exclude == ["/home/*/.cache"]
    assert job.passcommand == "cat /etc/borgwatch/home.pass"
    assert parse_duration(job.max_age or "") == 26 * 3600
    assert job.prune is not None and (job.prune.keep_daily, job.prune.keep_weekly) == (7, 4)
    assert config.borg == "borg" and job.check is None and job.dataset_diff == "exact"


@pytest.mark.parametrize("example", sorted((ROOT / "examples").rglob("*.toml")), ids=lambda p: p.name)
def test_shipped_example_configs_are_valid(example: Path) -> None:
    config = parse_config(example.read_text(), str(example))
    assert config.jobs or config.repositories


@pytest.mark.parametrize(("text", "expected"), [
    ('[jobs.home]\nrepository = 5', "c.toml: jobs.home.repository: expected a string, got an integer"),
    ('[jobs.home]\nrepository = "r"\nkeep_daily = 7', "c.toml: jobs.home.keep_daily: unknown key"),
    ('[jobs.home]\nrepository = "r"\n[jobs.home.prune]\nkeep_daily = "7"',
     "c.toml: jobs.home.prune.keep_daily: expected an integer, got a string"),
    ('[jobs.home]\nrepository = "r"\nmax_age = "soon"', 'jobs.home.max_age: expected a duration like "26h"'),
    ('[jobs.home]\npaths = ["/x"]', "c.toml: jobs.home.repository: missing required key"),
    ('[jobs.home]\nrepository = "r"\ndataset_diff = "maybe"', "expected one of exact, fast, off"),
    ('[jobs.home]\nrepository = "r"\npasscommand = "a"\npassphrase_file = "b"', "set only one of"),
    ("textfile_dir = [", "c.toml: invalid TOML"),
    ('[jobs."bad name"]\nrepository = "r"', "invalid name"),
])
def test_bad_config_names_file_key_and_expectation(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "c.toml")
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_secret_values_are_not_echoed_in_type_errors() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config('[jobs.h]\nrepository = "r"\npasscommand = ["echo", "hunter2"]', "c.toml")
    assert "hunter2" not in str(err.value)


def test_durations() -> None:
    assert parse_duration("90m") == 5400 and parse_duration("1h30m") == 5400
    assert parse_duration("7d") == 7 * 86400 and parse_duration("3600") == 3600
    for bad in ("", "h", "5x", "1h junk"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_check_config_cli_is_one_line_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[jobs.home]\nrepository = "r"\nkeep_daily = 7\n')
    proc = subprocess.run([BORGWATCH, "check-config", "-c", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 78
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"{cfg}: jobs.home.keep_daily: unknown key" in proc.stderr
    cfg.write_text(ISSUE_EXAMPLE)
    ok = subprocess.run([BORGWATCH, "check-config", "-c", str(cfg)], capture_output=True, text=True)
    assert ok.returncode == 0 and "OK (1 job(s): home)" in ok.stdout


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run([BORGWATCH, "run", "home", "-c", str(tmp_path / "nope.toml")], capture_output=True,
                          text=True)
    assert proc.returncode == 78 and "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_config_reference_is_in_sync() -> None:
    assert (ROOT / "docs" / "config.md").read_text() == render_markdown(), \
        "docs/config.md is stale: run `borgwatch config-reference > docs/config.md`"


def test_metrics_reference_is_in_sync() -> None:
    assert (ROOT / "docs" / "metrics.md").read_text() == render_metrics_markdown(), \
        "docs/metrics.md is stale: run `borgwatch metrics-reference > docs/metrics.md`"
