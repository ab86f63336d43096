"""Config schema: the documented example works as written; bad input gives one clear line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers.workspace import BORGWATCH, ROOT

from borgwatch.config.load import parse_config, parse_duration
from borgwatch.config.reference import render_markdown
from borgwatch.errors import ConfigError
from borgwatch.metrics.reference import render_metrics_markdown

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


# -- what parses but would crash or mislead `run` (issue #10 items 10, 11, 14, 19) ---------------------

BASE = '[jobs.home]\nrepository = "/srv/borg/home"\npaths = ["/home"]\n'


def test_config_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(BASE.encode() + b'exclude = ["caf\xe9"]\n')
    for command in ("check-config", "run"):
        proc = subprocess.run([BORGWATCH, command, "-c", str(cfg), *(["home"] if command == "run" else [])],
                              capture_output=True, text=True)
        assert proc.returncode == 78, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert "not valid UTF-8 (byte 0xe9 on line 4)" in proc.stderr


@pytest.mark.parametrize(("extra", "key"), [
    ('paths = ["/ho\\u0000me"]', "jobs.home.paths"),
    ('exclude_from = "/etc/x\\u0000"', "jobs.home.exclude_from"),
    ('passphrase_file = "/etc/pass\\u0000"', "jobs.home.passphrase_file"),
    ('environment = { BORG_RSH = "ssh\\u0000" }', "jobs.home.environment.BORG_RSH"),
    ('environment = { "BORG\\u0000RSH" = "ssh" }', "jobs.home.environment"),
    ('environment = { "A=B" = "x" }', "jobs.home.environment"),
    ('environment = { "" = "x" }', "jobs.home.environment"),
    ('passphrase_env = "MY=PASS"', "jobs.home.passphrase_env"),
    ("lock_wait = -1", "jobs.home.lock_wait"),
    ('archive_name = "{hostname}/{job}-{now}"', "jobs.home.archive_name"),
    ("[jobs.home.prune]\nkeep_daily = -3", "jobs.home.prune.keep_daily"),
    ("[jobs.home.compact]\nthreshold = 101", "jobs.home.compact.threshold"),
    ('[jobs.home.ping]\nsuccess = "http://x"\ntimeout = nan', "jobs.home.ping.timeout"),
    ('[jobs.home.ping]\nsuccess = "http://x"\ntimeout = inf', "jobs.home.ping.timeout"),
    ('[jobs.home.ping]\nsuccess = "http://x"\ntimeout = -5.0', "jobs.home.ping.timeout"),
])
def test_values_that_crash_run_are_rejected_naming_the_key(extra: str, key: str) -> None:
    base = BASE.replace('paths = ["/home"]\n', "") if extra.startswith("paths") else BASE
    with pytest.raises(ConfigError) as err:
        parse_config(base + extra + "\n", "c.toml")
    message = str(err.value)
    assert message.startswith(f"c.toml: {key}") and "\n" not in message and "\x00" not in message


@pytest.mark.parametrize(("top", "key"), [
    ('state_dir = "/var/lib/b\\u0000w"', "state_dir"),
    ('textfile_dir = "/var/lib/n\\u0000e"', "textfile_dir"),
    ('hostname = "nas\\u0000"', "hostname"),
    ('hostname = "nas/1"', "hostname"),
    ("lock_wait = -1", "lock_wait"),
    ('[loki]\nurl = "http://loki:3100"\nread_timeout = nan', "loki.read_timeout"),
    ('[loki]\nurl = "http://loki:3100"\nmax_delay = inf', "loki.max_delay"),
    ('[pushgateway]\nurl = "http://pg:9091"\ntimeout = 1e300', "pushgateway.timeout"),
    ('[repositories.r]\nrepository = "/srv/r"\nlock_wait = -1', "repositories.r.lock_wait"),
])
def test_top_level_values_that_crash_run_are_rejected(top: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(top + "\n" + BASE if not top.startswith("[") else BASE + top + "\n", "c.toml")
    assert str(err.value).startswith(f"c.toml: {key}:")


def test_job_names_are_bounded_and_safe_as_file_names() -> None:
    assert parse_config(BASE.replace("home", "a" * 64), "c.toml").jobs
    for name in ("a" * 65, "a" * 240, ".hidden", "..", "a/b", "tab\\there", "-x"):
        with pytest.raises(ConfigError, match="invalid name"):
            parse_config(BASE.replace("[jobs.home]", f'[jobs."{name}"]'), "c.toml")


def test_echoed_bad_values_are_capped() -> None:
    huge = "x" * 100_000
    for text in (f'lock_wait = "{huge}"\n' + BASE, BASE + f'dataset_diff = "{huge}"\n',
                 BASE + f'max_age = "{huge}"\n', f'{huge} = 1\n' + BASE):
        with pytest.raises(ConfigError) as err:
            parse_config(text, "c.toml")
        assert len(str(err.value)) < 400, str(err.value)[:300]


@pytest.mark.parametrize(("table", "args", "reason"), [
    ("", ["--filter=AME"], "--filter is not allowed here: it hides file statuses"),
    ("", ["--filt", "AME"], "--filt abbreviates --filter"),
    ("", ["--list"], "--list is not allowed here"),
    ("", ["--json"], "borgwatch sets it"),
    ("", ["--log-json"], "borgwatch sets it"),
    ("", ["--show-rc"], "borgwatch sets it"),
    ("", ["--progress"], "progress"),
    ("", ["-sp"], "-p is not allowed here"),
    ("", ["--lock-wait=5"], "set lock_wait instead"),
    ("", ["--dry-run"], "creates no archive"),
    ("", ["--error"], "hides the warnings"),
    ("", ["/etc"], "borg would take it as the repository"),
    ("", ["other-repo::archive"], "borg would take it as the repository"),
    ("", ["--", "x"], "is not an option"),
    ("", ["--compression"], "needs a value"),
    ("prune", ["--glob-archives", "*"], "can prune other jobs' archives"),
    ("prune", ["-a", "*"], "can prune other jobs' archives"),
    ("prune", ["--prefix=x"], "can prune other jobs' archives"),
    ("prune", ["-n"], "prunes nothing"),
    ("compact", ["--log-json"], "borgwatch sets it"),
    ("check", ["--repair"], "run `borg check --repair` by hand"),
    ("check", ["--json"], "borgwatch sets it"),
])
def test_extra_args_borgwatch_relies_on_are_rejected(table: str, args: list[str], reason: str) -> None:
    section = f"[jobs.home.{table}]\n" if table else ""
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + f"{section}extra_args = {json.dumps(args)}\n", "c.toml")
    key = f"jobs.home.{table}.extra_args" if table else "jobs.home.extra_args"
    assert str(err.value).startswith(f"c.toml: {key}: ") and reason in str(err.value)


@pytest.mark.parametrize(("table", "args"), [
    ("", ["--compression", "zstd,3", "-C", "lz4", "-Czstd", "--exclude-caches", "-s", "--stats"]),
    ("", ["--comment=nightly", "-e", "*.tmp", "--checkpoint-interval", "600", "--one-file-system"]),
    ("prune", ["--keep-within", "2d", "--save-space", "-d", "7"]),
    ("compact", ["--threshold", "5", "--cleanup-commits"]),
    ("check", ["--max-duration", "60", "--last", "3", "--verify-data"]),
])
def test_harmless_extra_args_are_accepted(table: str, args: list[str]) -> None:
    section = f"[jobs.home.{table}]\n" if table else ""
    parse_config(BASE + f"{section}extra_args = {json.dumps(args)}\n", "c.toml")


def test_password_in_repository_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE.replace("/srv/borg/home", "ssh://backup:Pw-s3cret-77@nas.example:22/./home")
                   + '[repositories.r]\nrepository = "ssh://u:Pw-s3cret-77@nas/./r"\n')
    proc = subprocess.run([BORGWATCH, "check-config", "-c", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 78 and proc.stderr.count("\n") == 1
    assert "jobs.home.repository: the repository URL carries a password" in proc.stderr
    assert "passcommand" in proc.stderr and "ssh key" in proc.stderr
    assert "Pw-s3cret-77" not in proc.stderr + proc.stdout
    # a user name alone is fine, and so is scp-style syntax
    parse_config(BASE.replace("/srv/borg/home", "ssh://backup@nas.example:22/./home"), "c.toml")
    parse_config(BASE.replace("/srv/borg/home", "backup@nas.example:home"), "c.toml")
