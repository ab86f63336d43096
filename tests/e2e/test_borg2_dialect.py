"""The borg 2 dialect against the real borg 2.0.0b23 (BORGWATCH_TEST_BORG2, else .venv-borg2/bin/borg;
the tests skip when neither exists): every argv builder, the result parsers, version detection,
`borgwatch collect` and `borgwatch exec` of a user's borg 2 command line."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from helpers.borg import PASSPHRASE, Repo, Repo2, borg2_binary, config_text, make_repo2, needs_borg2, small_tree
from helpers.workspace import BORGWATCH
from prometheus_client.parser import text_string_to_metric_families

from borgwatch.borg import argv
from borgwatch.borg.events import LogMessage, parse_line
from borgwatch.borg.exitcodes import LOCK_TIMEOUT_RC, classify
from borgwatch.borg.listings import parse_archive_listing
from borgwatch.borg.results import diff_changed_content, files_stats, parse_create_json
from borgwatch.borg.version import BORG2_TESTED, BorgVersion, detect_version
from borgwatch.commands.collect import collect_command, textfile_path
from borgwatch.config.load import parse_config
from borgwatch.config.schema import CheckConfig, CompactConfig
from borgwatch.errors import UserError

BORG2 = borg2_binary()
pytestmark = [pytest.mark.slow, needs_borg2()]
V2 = BorgVersion(2, 0, 0, BORG2_TESTED)


JOB = parse_config('''
[jobs.home]
repository = "/placeholder"
paths = ["src"]
[jobs.home.prune]
keep_last = 1
''').jobs["home"]


def test_version_detection_accepts_the_tested_beta_and_refuses_others(tmp_path: Path) -> None:
    found = detect_version(BORG2, dict(os.environ), tmp_path)
    assert (found.major, found.text) == (2, BORG2_TESTED)
    other = tmp_path / "borg"
    other.write_text("#!/bin/sh\necho 'borg 2.0.0b21'\n")
    other.chmod(0o755)
    with pytest.raises(UserError, match=f"2.0.0b21 is not supported.*tested beta {BORG2_TESTED}"):
        detect_version(str(other), dict(os.environ))


def test_every_builder_speaks_borg2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo2(tmp_path)
    monkeypatch.chdir(tmp_path)
    src = small_tree(tmp_path)
    time.sleep(0.05)
    (src / "newest").write_text("n\n")  # borg keeps no files-cache entry for the newest file (docs/borg2.md)
    job = JOB.__class__(**{**JOB.__dict__, "repository": str(repo.path)})
    series = argv.archive_name(job, "home", "nas", V2)
    assert series == "nas-home"
    first = repo.run(argv.create(BORG2, job, series, 5, list_files=True, version=V2))
    archive, repo_stats = parse_create_json(first.stdout.encode(), V2)
    assert archive is not None and archive.name == series and archive.files == 6
    assert archive.compressed_bytes is None and archive.deduplicated_bytes and repo_stats is None
    assert files_stats(first.stdout.encode(), V2) == {"A": 6, "d": 2}
    statuses = [e.status for e in map(parse_line, first.stderr.encode().splitlines()) if hasattr(e, "status")]
    assert statuses.count("A") == 6
    (src / "docs" / "f0.txt").write_text("changed\n")
    second = repo.run(argv.create(BORG2, job, series, 5, list_files=False, version=V2))
    # the series' files cache: 4 untouched files "U", the changed one "M", and the newest file of the first
    # run "A" although the previous archive has it (the dataset diff must verify "A" as well)
    assert files_stats(second.stdout.encode(), V2) == {"A": 1, "M": 1, "U": 4, "d": 2}
    other = repo.run(argv.create(BORG2, job, "nas-home-db", 5, list_files=False, version=V2))
    assert other.returncode == 0
    listing = repo.run(argv.list_archives(BORG2, str(repo.path), 5, argv.archive_match(job, "home", "nas", V2),
                                          checkpoints=True, version=V2))
    assert parse_archive_listing(listing.stdout.encode())[0] == 2  # the other series is not matched
    old, new = (argv.archive_id(a["id"]) for a in json.loads(listing.stdout)["archives"])
    diff = repo.run(argv.diff(BORG2, str(repo.path), old, new, 5, version=V2))
    changes = [json.loads(line) for line in diff.stdout.splitlines()]
    assert [c["path"] for c in changes] == ["src/docs/f0.txt"] and diff_changed_content(changes[0])
    items = repo.run(argv.list_items(BORG2, str(repo.path), new, 5, version=V2))
    assert len(items.stdout.splitlines()) == 8
    assert repo.run(argv.info_repository(BORG2, str(repo.path), 5, version=V2)).returncode == 0
    pruned = repo.run(argv.prune(BORG2, job, job.prune, argv.archive_match(job, "home", "nas", V2), 5, version=V2))
    assert "--keep" in pruned.args and "--keep-last" not in pruned.args
    left = repo.run(argv.list_archives(BORG2, str(repo.path), 5, version=V2))
    assert sorted(a["name"] for a in json.loads(left.stdout)["archives"]) == ["nas-home", "nas-home-db"]
    for cmd in (argv.compact(BORG2, job, CompactConfig(threshold=5), 5, version=V2),
                argv.check(BORG2, job, CheckConfig(max_duration=60, repository_only=True), 5, version=V2)):
        done = repo.run(cmd)
        rcs = [e.message for e in map(parse_line, done.stderr.encode().splitlines())
               if isinstance(e, LogMessage) and e.name == "borg.output.show-rc"]
        assert rcs == ["terminating with success status, rc 0"], done.stderr


def _read_prom(path: Path) -> dict[str, float]:
    return {s.name: s.value for f in text_string_to_metric_families(path.read_text()) for s in f.samples}


def _load(tmp: Path, repo: Repo, extra: str = "") -> object:
    return parse_config(config_text(tmp, repo, extra=extra), "test.toml")


def test_collect_reads_a_borg2_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo2(tmp_path)
    src = small_tree(tmp_path)
    for _ in range(2):
        repo.run([BORG2, "create", "--repo", str(repo.path), "nas-home", str(src)])
    config = _load(tmp_path, repo)
    assert collect_command(config, [], as_json=True) == 0  # type: ignore[arg-type]
    [inv] = json.loads(capsys.readouterr().out)
    assert (inv["status"], inv["archives"]) == ("ok", 2)
    assert abs(inv["last_archive_at"] - time.time()) < 600
    m = _read_prom(textfile_path(tmp_path / "textfile", "nas"))
    assert m["borgwatch_inventory_archives"] == 2 and m["borgwatch_inventory_collect_success"] == 1
    # borg 2 keeps no repository size totals: absent, not zero
    assert not {"borgwatch_inventory_unique_bytes", "borgwatch_inventory_unique_compressed_bytes",
                "borgwatch_inventory_total_bytes"} & set(m)


def test_collect_borg2_wrong_passphrase_missing_repository_and_lock(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo2(tmp_path)
    repo.run([BORG2, "create", "--repo", str(repo.path), "nas-home", str(small_tree(tmp_path))])
    config = _load(tmp_path, repo, extra="lock_wait = 1\n")
    assert collect_command(config, [], as_json=True) == 0  # type: ignore[arg-type]
    capsys.readouterr()
    holder = subprocess.Popen([BORG2, "with-lock", "--repo", str(repo.path), "sleep", "60"], env=repo.env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not any((repo.path / "locks").glob("*")):
            assert holder.poll() is None and time.monotonic() < deadline, "with-lock never took the lock"
            time.sleep(0.05)
        held = repo.run(argv.list_archives(BORG2, str(repo.path), 1, version=V2), check=False)
        assert held.returncode == LOCK_TIMEOUT_RC and classify(held.returncode) == "error"
        assert collect_command(config, [], as_json=True) == 0  # type: ignore[arg-type]
        [inv] = json.loads(capsys.readouterr().out)
        assert (inv["status"], inv["archives"], inv["error"]) == ("skipped", 1, "")
    finally:
        holder.terminate()
        holder.wait(30)
    repo.passfile.write_text("wrong\n")
    assert collect_command(config, [], as_json=False) == 2  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "check passcommand / passphrase_file / passphrase_env" in err and "wrong" not in err
    assert PASSPHRASE not in err
    missing = _load(tmp_path, Repo2(BORG2, tmp_path / "nowhere", repo.base_dir, repo.passfile))
    assert collect_command(missing, [], as_json=False) == 2  # type: ignore[arg-type]
    assert "check the repository path/URL" in capsys.readouterr().err
    m = _read_prom(textfile_path(tmp_path / "textfile", "nas"))
    assert m["borgwatch_inventory_collect_success"] == 0


def test_exec_wraps_a_users_borg2_command_line(tmp_path: Path) -> None:
    repo = make_repo2(tmp_path)
    src = small_tree(tmp_path)
    (tmp_path / "textfile").mkdir()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'textfile_dir = "{tmp_path / "textfile"}"\nstate_dir = "{tmp_path / "state"}"\n')
    env = {**repo.env(), "BORG_REPO": str(repo.path)}
    proc = subprocess.run([BORGWATCH, "exec", "manual", "-c", str(cfg), "--", BORG2, "create", "--json",
                           "nas-manual", str(src)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["archive"]["name"] == "nas-manual"  # borg's stdout passes through
    text = (tmp_path / "textfile" / "borgwatch-manual.prom").read_text()
    m = {(s.name, tuple(sorted(s.labels.items()))): s.value
         for f in text_string_to_metric_families(text) for s in f.samples}
    job = (("backup_job", "manual"),)
    assert m[("borgwatch_stage_exit_code", (*job, ("stage", "create")))] == 0
    assert m[("borgwatch_archive_files", job)] == 5
    assert not any(name == "borgwatch_archive_compressed_bytes" for name, _ in m)  # borg 2 has no such size
    assert any(name == "borgwatch_build_info" and ("borg_version", BORG2_TESTED) in labels for name, labels in m)
    bad = subprocess.run([BORGWATCH, "exec", "manual", "-c", str(cfg), "--", BORG2, "list", "--repo",
                          str(tmp_path / "nowhere"), "x"], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 13  # Repository.DoesNotExist, a modern exit code
    assert PASSPHRASE not in bad.stdout + bad.stderr
