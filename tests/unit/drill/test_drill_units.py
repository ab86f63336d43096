"""Issue #13, restore drills without borg: the borg facts' parsers and argv, the sample choice, the
verification verdicts, the drill table, the drill's series beside the last run's in the job's textfile
(promtool-clean)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers.workspace import BORGWATCH, parse_metrics

from borgwatch.borg import extract as bx
from borgwatch.borg.events import LogMessage
from borgwatch.borg.version import BorgVersion
from borgwatch.config.schema import Config
from borgwatch.drill.config import DrillConfig, plan
from borgwatch.drill.metrics import DRILL_METRICS
from borgwatch.drill.result import DrillResult
from borgwatch.drill.sample import Coverage
from borgwatch.drill.verify import verify_against_archive, verify_restored
from borgwatch.model import Command, RunResult
from borgwatch.sinks.textfile import TextfileSink
from borgwatch.store.state import save_state, state_from_result

# real `borg list --json-lines --format {type}{path}{size}{mtime}{ctime}` lines (1.4.5, then 1.2.4)
BORG2 = BorgVersion(2, 0, 0, "2.0.0b23")
LINE_14 = (b'{"type": "-", "mode": "-rw-r--r--", "path": "tmp/src/a.txt", "healthy": true, "size": 6, '
           b'"mtime": "2026-12-02T01:44:57.291230", "ctime": "2026-12-02T01:44:57.291231"}')
LINE_12 = (b'{"type": "-", "mode": "-rw-r--r--", "path": "tmp/src/a.txt", "healthy": true, '
           b'"ctime": "2026-12-02T01:44:57.291231", "size": 6, "mtime": "2026-12-02T01:44:57.291230"}')


def test_list_lines_of_both_borg_versions_parse_to_the_same_file() -> None:
    a, b = bx.parse_file_line(LINE_14), bx.parse_file_line(LINE_12)
    assert a == b and a is not None
    assert (a.path, a.size, a.ctime_us - a.mtime_us) == ("tmp/src/a.txt", 6, 1)
    assert bx.parse_file_line(LINE_14.replace(b'"type": "-"', b'"type": "d"')) is None
    assert bx.parse_file_line(b"not json") is None
    assert bx.parse_file_line(b'{"type": "-", "path": "x"}') is None


def test_hashes_archives_and_listed_paths_parse() -> None:
    out = bx.parse_hashes(b"ab12\ttmp/a b\x00cd34\ttmp/\xc3\xa9\x00")
    assert out == {"tmp/a b": "ab12", "tmp/\u00e9": "cd34"}
    listing = json.dumps({"archives": [{"name": "h-web-1", "start": "2026-12-01T10:00:00.000000"},
                                       {"name": "h-web-2", "start": "2026-12-02T10:00:00.000000"}]}).encode()
    newest = bx.find_archive(listing, None)
    assert newest is not None and newest.ref == newest.name == "h-web-2"
    named = bx.find_archive(listing, "h-web-1")
    assert named is not None and newest.time - named.time == 86400
    assert bx.find_archive(listing, "other") is None
    assert bx.find_archive(b'{"archives": []}', None) is None
    assert bx.listed_path(LogMessage("INFO", "tmp/a", "", bx.LIST_LOGGER, None)) == "tmp/a"
    assert bx.listed_path(LogMessage("ERROR", "tmp/a", "", "borg.archiver", None)) is None


# real `borg repo-list --json` archives and `extract --list --log-json` lines of borg 2.0.0b23
BORG2_SERIES = json.dumps({"archives": [
    {"archive": "nas-home", "id": "59293e20e4ac" + "0" * 52, "name": "nas-home",
     "time": "2026-12-02T04:05:02.862652+00:00"},
    {"archive": "nas-home", "id": "a545b44f1052" + "0" * 52, "name": "nas-home",
     "time": "2026-12-02T04:05:06.447014+00:00"}]}).encode()


def test_borg2_names_the_archive_by_id_and_marks_what_extract_restores() -> None:
    newest = bx.find_archive(BORG2_SERIES, None, BORG2)
    assert newest is not None and newest.ref == "aid:a545b44f1052" + "0" * 52 and newest.name == "nas-home"
    assert newest.time == 1796184306.447014  # the offset borg 2 prints is honoured
    assert bx.find_archive(BORG2_SERIES, "nas-home", BORG2) == newest  # a series name: its newest archive
    older = bx.find_archive(BORG2_SERIES, "aid:59293e20", BORG2)
    assert older is not None and older.ref.startswith("aid:59293e20") and older.time < newest.time
    assert bx.find_archive(BORG2_SERIES, "aid:ffff", BORG2) is None
    line = LogMessage("INFO", "+ tmp/src/d/f1.bin", "", bx.LIST_LOGGER, None)
    assert bx.listed_path(line, BORG2) == "tmp/src/d/f1.bin"
    assert bx.listed_path(LogMessage("INFO", "- tmp/src", "", bx.LIST_LOGGER, None), BORG2) is None
    argv = bx.extract("borg", "/r", newest.ref, 5, ["tmp/x"], version=BORG2)
    assert argv[argv.index("--repo") + 1] == "/r" and "::" not in " ".join(argv)
    assert argv[-2:] == [newest.ref, "pf:tmp/x"] and "--list" in argv
    assert bx.extract_dry_run("borg", "/r", newest.ref, 5, version=BORG2)[-2:] == ["--dry-run", newest.ref]
    listing = bx.list_files("borg", "/r", newest.ref, 5, version=BORG2)
    assert listing[1] == "list" and listing[-1] == newest.ref and "--json-lines" in listing
    hashes = bx.list_hashes("borg", "/r", newest.ref, 5, ["tmp/x"], version=BORG2)
    assert hashes[-2:] == [newest.ref, "pf:tmp/x"] and "{sha256}{TAB}{path}{NUL}" in hashes


def test_argv_restores_exactly_the_named_files_and_waits_for_the_lock() -> None:
    argv = bx.extract("borg", "/r", "a1", 42, ["tmp/x", "tmp/y"])
    assert argv[:2] == ["borg", "extract"] and argv[argv.index("--lock-wait") + 1] == "42"
    assert argv[-3:] == ["/r::a1", "pf:tmp/x", "pf:tmp/y"] and "--list" in argv
    assert bx.extract("borg", "/r", "a1", 1, ["etc"], prefixes=True)[-1] == "pp:etc"
    assert bx.extract_dry_run("borg", "/r", "a1", 1)[-2:] == ["--dry-run", "/r::a1"]
    assert "{sha256}{TAB}{path}{NUL}" in bx.list_hashes("borg", "/r", "a1", 1, ["tmp/x"])
    assert bx.archive_path("/etc/hosts") == "etc/hosts"


def files(n: int, size: int = 100) -> list[bx.ArchivedFile]:
    return [bx.ArchivedFile(f"src/f{i:05}", size + i, i, i) for i in range(n)]


def test_the_sample_is_reproducible_from_its_seed_and_bounded(tmp_path: Path) -> None:
    p = plan(DrillConfig(sample_percent=10, max_files=50, max_bytes=10**9))

    def choose(seed: int, tmp: str) -> list[str]:
        cov = Coverage(tmp_path / f"{tmp}.sqlite")
        listing = cov.load_listing(files(1000))
        picked = [f.path for f in cov.choose(p, listing, seed, None)]
        cov.close()
        return picked

    assert choose(7, "a") == choose(7, "b")
    assert choose(7, "c") != choose(8, "d")
    assert len(choose(7, "e")) == 50  # max_files before 10 % of 1000
    tight = plan(DrillConfig(sample_percent=100, max_files=1000, max_bytes=1000))
    cov = Coverage(tmp_path / "tight.sqlite")
    picked = cov.choose(tight, cov.load_listing(files(100)), 1, None)
    assert sum(f.size for f in picked) <= 1000 and picked


def test_recent_changes_are_weighted_and_the_rotation_covers_the_rest_first(tmp_path: Path) -> None:
    p = plan(DrillConfig(sample_percent=10, max_files=1000))
    cov = Coverage(tmp_path / "c.sqlite")
    tree = files(200)
    listing = cov.load_listing(tree)
    recent = cov.choose(p, listing, 3, changed_after_us=189)  # files 190..199 changed since
    assert sum(f.mtime_us > 189 for f in recent) >= 10  # half the sample of 20 went to 10 recent files
    seen: set[str] = set()
    for seed in range(10):
        sample = cov.choose(p, listing, seed, None)
        assert not seen & {f.path for f in sample} or len(seen) == 200
        seen |= {f.path for f in sample}
        cov.mark_verified([f.path for f in sample], time.time())
    assert len(seen) == 200 and cov.coverage(time.time()) == 1.0
    assert cov.bytes_under("src") == sum(f.size for f in tree) and cov.bytes_under("sr") == 0


def test_a_restored_file_differing_from_an_unchanged_live_file_is_a_mismatch(tmp_path: Path) -> None:
    live = tmp_path / "live" / "a.bin"
    live.parent.mkdir()
    live.write_bytes(b"x" * 100)
    st = live.stat()
    archived = bx.ArchivedFile(str(live).lstrip("/"), 100, st.st_mtime_ns // 1000, st.st_ctime_ns // 1000)
    restore = tmp_path / "restore"
    (restore / archived.path).parent.mkdir(parents=True)
    (restore / archived.path).write_bytes(b"y" * 100)  # bit rot: same size, other bytes
    out = verify_restored([archived], restore, {})
    assert [f for f, _ in out.mismatched] == [archived]
    ((line, path),) = out.problems().items()
    assert path == str(live) and line.startswith(f"{live}: ") and "live file" in line
    (restore / archived.path).write_bytes(b"x" * 100)
    assert verify_restored([archived], restore, {}).verified == [archived]
    assert verify_restored([archived], restore, {archived.path: "damaged"}).unreadable == [(archived, "damaged")]


def test_a_changed_live_file_is_judged_by_the_archive_hash(tmp_path: Path) -> None:
    live = tmp_path / "b.bin"
    live.write_bytes(b"new content")
    archived = bx.ArchivedFile(str(live).lstrip("/"), 3, 1, 1)  # borg saw another size and time
    restore = tmp_path / "restore"
    (restore / archived.path).parent.mkdir(parents=True)
    (restore / archived.path).write_bytes(b"old")
    out = verify_restored([archived], restore, {})
    assert out.changed and not out.mismatched
    import hashlib
    verify_against_archive(out, {archived.path: hashlib.sha256(b"old").hexdigest()})
    assert out.verified == [archived] and not out.changed
    out = verify_restored([archived], restore, {})
    verify_against_archive(out, {archived.path: hashlib.sha256(b"other").hexdigest()})
    assert out.mismatched and "archive promises" in next(iter(out.problems()))


def test_a_bad_drill_table_is_one_line_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'state_dir = "{tmp_path}/s"\ntextfile_dir = "{tmp_path}"\n[jobs.home]\nrepository = "/r"\n'
                   'paths = ["/src"]\n[jobs.home.drill]\nsample_percent = 0\n')
    proc = subprocess.run([BORGWATCH, "drill", "home", "-c", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 78 and "Traceback" not in proc.stderr
    assert "jobs.home.drill.sample_percent" in proc.stderr and len(proc.stderr.splitlines()) == 1
    cfg.write_text(cfg.read_text().replace("sample_percent = 0", "evry = \"7d\""))
    proc = subprocess.run([BORGWATCH, "drill", "home", "-c", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 78 and "jobs.home.drill.evry: unknown key" in proc.stderr


def result(**kw) -> DrillResult:  # noqa: ANN003
    base = dict(job="home", started_at=1000.0, seed=5, status="failed", ended_at=1010.0, archive="a",
                archive_time=900.0, archive_bytes=10_000, files_verified=3, bytes_verified=300,
                files_mismatched=1, bytes_mismatched=10, restored_bytes=310, restore_seconds=0.5,
                coverage_ratio=0.25, max_age_seconds=86400.0)
    return DrillResult(**{**base, **kw})


def record_run(tmp_path: Path, textfile_dir: Path) -> Config:
    """A job whose last run (exit code 0) is recorded in its state and its textfile, and its config."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    config = Config(textfile_dir=str(textfile_dir), state_dir=str(state))
    run = RunResult(job="home", run_id="r", host="h", started_at=1.0, in_progress=False, ended_at=2.0,
                    status="success", exit_code=0)
    save_state(state, "home", state_from_result(run, "a"))
    TextfileSink(config, "home").on_finish(run)
    return config


def write(config: Config, drill: DrillResult) -> None:
    """The textfile sink at the end of `borgwatch drill` (a RunSession of command drill)."""
    TextfileSink(config, "home").on_finish(RunResult(job="home", run_id="d", host="h", started_at=drill.started_at,
                                                     command=Command.DRILL, drill=drill))


def test_the_drill_keeps_the_last_runs_series_and_is_promtool_clean(tmp_path: Path) -> None:
    config = record_run(tmp_path, tmp_path)
    prom = tmp_path / "borgwatch-home.prom"
    write(config, result(dry_run_ok=False))
    write(config, result(status="success", files_mismatched=0, last_success_at=1010.0))
    m = parse_metrics(prom.read_text())
    job = ("backup_job", "home")
    assert ("borgwatch_drill_dry_run_success", frozenset({job})) not in m  # the last drill's series only
    assert m[("borgwatch_run_exit_code", frozenset({job}))] == 0
    assert m[("borgwatch_drill_status", frozenset({job, ("status", "success")}))] == 1
    assert m[("borgwatch_drill_status", frozenset({job, ("status", "failed")}))] == 0
    assert m[("borgwatch_drill_coverage_ratio", frozenset({job}))] == 0.25
    assert m[("borgwatch_drill_archive_age_seconds", frozenset({job}))] == 110
    assert m[("borgwatch_drill_rto_estimate_seconds", frozenset({job}))] == pytest.approx(10_000 / 620)
    assert all(spec.name.startswith("borgwatch_drill_") and "job" not in spec.labels for spec in DRILL_METRICS)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (.ci/run installs it)")
    check = subprocess.run([promtool, "check", "metrics"], input=prom.read_bytes(), capture_output=True)
    assert check.returncode == 0, check.stderr


def test_the_drill_never_writes_through_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    config = record_run(tmp_path, tmp_path)
    prom = tmp_path / "borgwatch-home.prom"
    prom.unlink()
    os.symlink(victim, prom)
    write(config, result())
    assert victim.read_text() == "root's file\n"
    assert not prom.is_symlink() and "borgwatch_drill_status" in prom.read_text()


def test_node_exporter_scrapes_the_drills_textfile_cleanly(tmp_path: Path, node_exporter) -> None:  # noqa: ANN001
    import tempfile
    import urllib.request
    # node_exporter runs as user prometheus: the dir lives outside pytest's private (0700) tmp tree
    textfile_dir = Path(tempfile.mkdtemp(prefix="borgwatch-textfile-", dir="/tmp"))
    try:
        textfile_dir.chmod(0o755)
        write(record_run(tmp_path, textfile_dir), result())
        exporter = node_exporter(textfile_dir)
        body = urllib.request.urlopen(exporter.url, timeout=5).read().decode()
    finally:
        shutil.rmtree(textfile_dir, ignore_errors=True)
    scraped = parse_metrics(body)
    job = ("backup_job", "home")
    assert scraped[("node_textfile_scrape_error", frozenset())] == 0, exporter.logs()
    assert scraped[("borgwatch_drill_status", frozenset({job, ("status", "failed")}))] == 1
    assert scraped[("borgwatch_drill_files", frozenset({job, ("result", "mismatched")}))] == 1
    assert scraped[("borgwatch_run_exit_code", frozenset({job}))] == 0


def test_borg_local_times_convert_exactly_on_both_sides_of_a_dst_change(monkeypatch) -> None:  # noqa: ANN001
    import datetime
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    bx._local_offset.cache_clear()
    try:
        for text in ("2026-01-15T12:00:00.000001", "2026-07-15T12:00:00.999999"):
            line = LINE_14.replace(b"2026-12-02T01:44:57.291230", text.encode())
            parsed = bx.parse_file_line(line)
            expected = datetime.datetime.fromisoformat(text).astimezone()
            assert parsed is not None
            assert parsed.mtime_us == (expected - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)) \
                // datetime.timedelta(microseconds=1)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
        bx._local_offset.cache_clear()


def test_the_restore_directory_is_private_and_never_inside_the_sources(tmp_path: Path) -> None:
    from borgwatch.drill.core import make_workdir, remove_tree
    from borgwatch.errors import UserError
    src = tmp_path / "src"
    (src / "tmp").mkdir(parents=True)
    with pytest.raises(UserError, match="inside the job's source path"):
        make_workdir(str(src / "tmp"), [str(src)])
    work = make_workdir(str(tmp_path), [str(src)])
    assert work.parent == tmp_path and (work.stat().st_mode & 0o777) == 0o700
    (work / "ro" / "deep").mkdir(parents=True)
    (work / "ro" / "deep" / "f").write_text("x")
    (work / "ro").chmod(0o555)  # borg restores directories with their archived modes
    remove_tree(work)
    assert not work.exists()
