"""`borgwatch collect` against real repositories, including while a real backup of the same repository
runs: the backup must succeed and collect must neither fail nor block it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.borg import VENV_BORG, Repo, borg_binaries, config_text, make_repo, random_tree, small_tree
from prometheus_client.parser import text_string_to_metric_families

from borgwatch.borg.listings import parse_archive_listing as parse_listing
from borgwatch.borg.listings import parse_repository_info as parse_info
from borgwatch.commands.collect import (
    Inventory,
    collect_command,
    inventory_path,
    inventory_samples,
    textfile_path,
)
from borgwatch.config.load import parse_config
from borgwatch.config.schema import Config
from borgwatch.errors import UserError

T_A, T_B = "2026-01-02T03:04:05", "2026-01-02T09:00:00"  # UTC, as borg create --timestamp takes them
EPOCH_B = datetime(2026, 1, 2, 9, 0, tzinfo=UTC).timestamp()


def read_prom(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            assert s.labels == {"repository": "nas"}, s  # the only label, and never the URL
            out[s.name] = s.value
    return out


def load(tmp: Path, repo: Repo, extra: str = "") -> Config:
    return parse_config(config_text(tmp, repo, extra=extra), "test.toml")


@pytest.fixture(params=borg_binaries())
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repo:
    """Four archives from two clients; the newest (client b) at T_B."""
    repo = make_repo(tmp_path, request.param)
    src = small_tree(tmp_path)
    for name, ts in (("a-1", T_A), ("b-1", T_A), ("a-2", T_A), ("b-2", T_B)):
        repo.create(name, src, ts)
    return repo


def promtool_clean(path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (.ci/run installs it)")
    check = subprocess.run([promtool, "check", "metrics"], input=path.read_text(), capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
def test_collect_writes_inventory(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # borg 1.x prints local time without offset: +05:30 here
    time.tzset()
    try:
        config = load(tmp_path, repo)
        assert collect_command(config, [], as_json=True) == 0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    out = json.loads(capsys.readouterr().out)
    assert [(r["repository"], r["status"]) for r in out] == [("nas", "ok")]
    path = textfile_path(tmp_path / "textfile", "nas")
    assert path.stat().st_mode & 0o777 == 0o644
    m = read_prom(path)
    assert m["borgwatch_inventory_archives"] == 4
    assert m["borgwatch_inventory_last_archive_timestamp_seconds"] == EPOCH_B
    assert m["borgwatch_inventory_unique_compressed_bytes"] > 0
    assert m["borgwatch_inventory_total_bytes"] == 4 * 5 * len("file 0\n" * 200)  # original sizes
    assert (m["borgwatch_inventory_collect_success"], m["borgwatch_inventory_collect_skipped"]) == (1, 0)
    assert 0 < m["borgwatch_inventory_collect_duration_seconds"] < 30
    saved = json.loads(inventory_path(tmp_path / "state", "nas").read_text())
    assert saved["archives"] == 4 and saved["status"] == "ok"
    promtool_clean(path)


@pytest.mark.slow
@pytest.mark.parametrize("borg", borg_binaries())
def test_collect_during_running_backup(borg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path, borg)
    src = small_tree(tmp_path)
    for i in range(3):
        repo.create(f"old-{i}", src, T_A)
    config = load(tmp_path, repo)
    assert collect_command(config, [], as_json=False) == 0
    assert "nas: ok, 3 archives" in capsys.readouterr().out
    big = random_tree(tmp_path, 1)
    fifo = big / "stream"  # with --read-special borg reads the FIFO like a file: the backup lasts until
    os.mkfifo(fifo)  # the test closes it, however fast the machine is
    stop = threading.Event()
    writer = threading.Thread(target=_feed, args=(fifo, stop), daemon=True)
    writer.start()
    backup = repo.popen_create("during", big, "--read-special", "-C", "lzma,9")
    try:
        deadline = time.monotonic() + 30
        while not (repo.path / "lock.exclusive").exists():
            assert backup.poll() is None and time.monotonic() < deadline, "backup never took its lock"
            time.sleep(0.02)
        results = []
        for _ in range(2):  # collect twice while the backup holds the repository
            t0 = time.monotonic()
            rc = collect_command(config, [], as_json=True)
            results.append((rc, json.loads(capsys.readouterr().out)[0], time.monotonic() - t0))
        still_running = backup.poll() is None
    finally:
        stop.set()
        writer.join(30)
        _, stderr = backup.communicate(timeout=300)
    assert backup.returncode == 0, stderr
    assert still_running, "the backup ended before collect finished"
    for rc, inv, elapsed in results:
        assert rc == 0 and inv["status"] == "skipped" and inv["error"] == ""
        assert inv["archives"] == 3  # previous values kept
        assert elapsed < 10  # bounded by lock_wait (1 s) plus borg start-up
    m = read_prom(textfile_path(tmp_path / "textfile", "nas"))
    assert m["borgwatch_inventory_collect_skipped"] == 1 and m["borgwatch_inventory_archives"] == 3
    assert m["borgwatch_inventory_collect_success"] == 1
    assert collect_command(config, [], as_json=True) == 0  # after the backup: fresh values
    assert json.loads(capsys.readouterr().out)[0]["archives"] == 4
    assert read_prom(textfile_path(tmp_path / "textfile", "nas"))["borgwatch_inventory_collect_skipped"] == 0


def _feed(fifo: Path, stop: threading.Event) -> None:
    with fifo.open("wb") as out:  # blocks until borg opens the FIFO
        while not stop.is_set():
            out.write(os.urandom(64 * 1024))
            time.sleep(0.05)


@pytest.mark.slow
def test_backups_starting_during_collect_do_not_fail(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The reverse race: clients with borg's default --lock-wait 1 start while collect holds the shared
    lock. Collect holds it briefly, so every backup gets through."""
    repo = make_repo(tmp_path, VENV_BORG)
    src = small_tree(tmp_path)
    repo.create("seed", src, T_A)
    config = load(tmp_path, repo)
    for i in range(3):
        collector = threading.Thread(target=collect_command, args=(config, [], True))
        collector.start()
        time.sleep(0.3 + 0.15 * i)  # borg list / info are running now
        done = repo.borg_run("create", "--lock-wait", "1", f"{repo.path}::race-{i}", str(src), check=False)
        collector.join(60)
        assert done.returncode == 0, done.stderr
    capsys.readouterr()


@pytest.mark.slow
def test_wrong_passphrase_is_an_error_and_keeps_previous_values(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path, VENV_BORG)
    repo.create("only", small_tree(tmp_path), T_A)
    config = load(tmp_path, repo)
    assert collect_command(config, [], as_json=True) == 0
    repo.passfile.write_text("wrong\n")
    assert collect_command(config, ["nas"], as_json=False) == 2
    captured = capsys.readouterr()
    assert "nas: FAILED" in captured.out
    assert "passphrase" in captured.err.lower() and "wrong\n" not in captured.err
    m = read_prom(textfile_path(tmp_path / "textfile", "nas"))
    assert m["borgwatch_inventory_collect_success"] == 0
    assert m["borgwatch_inventory_archives"] == 1


@pytest.mark.slow
def test_missing_repository_reports_cause(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = Repo(VENV_BORG, tmp_path / "nope", tmp_path / "b", tmp_path / "p")
    repo.passfile.write_text("x\n")
    assert collect_command(load(tmp_path, repo), [], as_json=False) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unknown_or_no_repositories(tmp_path: Path) -> None:
    config = parse_config(f'state_dir = "{tmp_path}"\n', "t.toml")
    with pytest.raises(UserError, match=r"no \[repositories"):
        collect_command(config, [], as_json=False)
    repo = Repo("borg", tmp_path / "r", tmp_path, tmp_path / "p")
    with pytest.raises(UserError, match="'other' is not in"):
        collect_command(load(tmp_path, repo), ["other"], as_json=False)


def test_parse_listing_and_info(monkeypatch: pytest.MonkeyPatch) -> None:
    listing = {"archives": [{"name": "a", "time": "2026-01-02T03:04:05.000000"},
                            {"name": "b", "time": "2026-01-02T04:04:05.000000"},
                            {"name": "c", "time": "2026-01-01T23:00:00.123456+00:00"}]}
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        count, newest = parse_listing(json.dumps(listing).encode())
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert count == 3 and newest == datetime(2026, 1, 2, 4, 4, 5, tzinfo=UTC).timestamp()
    assert parse_listing(b'{"archives": []}') == (0, None)
    info = {"cache": {"stats": {"unique_size": 10, "unique_csize": 5, "total_size": 99}}}
    assert parse_info(json.dumps(info).encode()) == (10, 5, 99)
    assert parse_info(b'{"cache": {"path": "/x"}}') == (None, None, None)  # borg 2 has no stats


def test_inventory_samples_skip_unknown_values() -> None:
    names = {s[0] for s in inventory_samples(Inventory("nas", status="error", attempted_at=1.0))}
    assert "borgwatch_inventory_archives" not in names
    assert "borgwatch_inventory_collect_success" in names
