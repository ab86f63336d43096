"""The borg layer without running borg: argv builders, stream parser, exit codes, result shapes."""

from __future__ import annotations

import json

from borgwatch.borg import argv
from borgwatch.borg.events import FileStatus, LogMessage, Progress, Prompt, Text, parse_line
from borgwatch.borg.exitcodes import classify, signal_name, worst
from borgwatch.borg.results import diff_changed_content, parse_create_json, prune_action
from borgwatch.config.load import parse_config
from borgwatch.redact import Redactor, strip_url_credentials

CONFIG = parse_config('''
[jobs.home]
repository = "ssh://u@host/./repo"
paths = ["/home", "/etc"]
exclude = ["/home/*/.cache"]
compression = "zstd,3"
exclude_caches = true
extra_args = ["--noatime"]
[jobs.home.prune]
keep_daily = 7
keep_within = "2d"
[jobs.home.check]
repository_only = true
max_duration = 600
''')
JOB = CONFIG.jobs["home"]


def test_create_argv() -> None:
    a = argv.create("borg", JOB, "nas-home-{now}", 30, list_files=True)
    assert a[:2] == ["borg", "create"]
    assert {"--log-json", "--show-rc", "--json", "--list", "--exclude-caches", "--noatime"} <= set(a)
    assert a[a.index("--lock-wait") + 1] == "30" and a[a.index("--compression") + 1] == "zstd,3"
    assert a[a.index("--exclude") + 1] == "/home/*/.cache"
    assert a[-3:] == ["ssh://u@host/./repo::nas-home-{now}", "/home", "/etc"]
    assert "--list" not in argv.create("borg", JOB, "x", 1, list_files=False)


def test_prune_check_diff_argv() -> None:
    p = argv.prune("borg", JOB, JOB.prune, "nas-home-*", 5)
    assert p[:2] == ["borg", "prune"] and p[-1] == "ssh://u@host/./repo"
    assert p[p.index("--keep-daily") + 1] == "7" and p[p.index("--keep-within") + 1] == "2d"
    assert p[p.index("--glob-archives") + 1] == "nas-home-*" and "--list" in p
    c = argv.check("borg", JOB, JOB.check, 5)
    assert "--repository-only" in c and c[c.index("--max-duration") + 1] == "600"
    d = argv.diff("borg", "/r", "a1", "a2", 5, ["x/y"])
    assert d[-3:] == ["/r::a1", "a2", "x/y"] and "--content-only" in d and "--json-lines" in d


def test_archive_name_and_glob() -> None:
    assert argv.render_name("{hostname}-{job}-{now}", "home", "nas") == "nas-home-{now}"
    assert argv.archive_glob(JOB, "home", "nas") == "nas-home-" + "-".join(
        ["[0-9]" * 4, "[0-9]" * 2, "[0-9]" * 2]) + "T" + ":".join(["[0-9]" * 2] * 3) + "." + "[0-9]" * 6


def test_archive_glob_of_a_job_cannot_match_a_job_whose_name_extends_it() -> None:
    import fnmatch
    web = argv.archive_glob(JOB, "web", "nas")
    assert argv.glob_is_exact(web)
    assert fnmatch.fnmatchcase("nas-web-2026-12-02T01:02:03.123456", web)
    for other in ("nas-web-db-2026-12-02T01:02:03.123456", "nas-web-2026-12-02T01:02:03.123456.checkpoint",
                  "nas-web-2026-2026-12-02T01:02:03.123456", "nas-web-by-hand"):
        assert not fnmatch.fnmatchcase(other, web), other
    odd = CONFIG.jobs["home"].__class__(repository="/r", archive_name="{job}[x]*-{user}-{now}-{{lit}}")
    glob = argv.archive_glob(odd, "j", "h")
    assert glob.startswith("j[[]x[]][*]-*-") and glob.endswith("-{lit}") and not argv.glob_is_exact(glob)
    # a glob with a * (here {user} after {job}) is checked against the other jobs before prune
    loose = CONFIG.jobs["home"].__class__(repository="/r", archive_name="{job}-{user}-{now}")
    jobs = {"web": loose, "web-db": loose, "mail": loose}
    assert argv.overlapping_job(argv.archive_glob(loose, "web", "h"), jobs, "web", "h") == "web-db"
    assert argv.overlapping_job(argv.archive_glob(loose, "mail", "h"), jobs, "mail", "h") is None
    assert argv.overlapping_job(argv.archive_glob(JOB, "web", "h"), {"web": JOB, "web-db": JOB}, "web", "h") is None


def test_parse_file_status_fast_path_and_escapes() -> None:
    assert parse_line(b'{"type": "file_status", "status": "A", "path": "/src/a b"}\n') == FileStatus("A", "/src/a b")
    escaped = json.dumps({"type": "file_status", "status": "M", "path": 'q"uote\\x'}).encode()
    assert parse_line(escaped) == FileStatus("M", 'q"uote\\x')
    unicode = json.dumps({"type": "file_status", "status": "U", "path": "ünï"}, ensure_ascii=False).encode()
    assert parse_line(unicode) == FileStatus("U", "ünï")


def test_parse_non_json_and_mixed_lines() -> None:
    line = b'Enter passphrase for key /r: {"type": "log_message", "levelname": "ERROR", "message": "m", ' \
           b'"msgid": "PassphraseWrong", "name": "borg.archiver", "time": 1.5}'
    assert parse_line(line) == LogMessage("ERROR", "m", "PassphraseWrong", "borg.archiver", 1.5)
    assert parse_line(b"usage: borg [-h]") == Text("usage: borg [-h]")
    assert parse_line(b"   \n") is None
    assert isinstance(parse_line(b'{"type": "archive_progress", "nfiles": 3}'), Progress)
    prompt = parse_line(b'{"type": "question_prompt", "msgid": "BORG_X", "message": "Continue? [yN]"}')
    assert isinstance(prompt, Prompt) and prompt.msgid == "BORG_X"
    assert parse_line(b"\xff\xfe not utf8") == Text("\udcff\udcfe not utf8")


def test_exit_code_classes() -> None:
    assert [classify(rc) for rc in (0, 1, 2, 13, 52, 73, 100, 107, 127, 129, 130, 143)] == [
        "success", "warning", "error", "error", "error", "error", "warning", "warning", "warning",
        "interrupted", "interrupted", "interrupted"]
    assert signal_name(143) == "SIGTERM" and worst("success", "warning", "error") == "error"


def test_create_json_shapes_1x_and_2x() -> None:
    one = {"archive": {"name": "a1", "id": "ab", "duration": 0.5, "stats": {
        "compressed_size": 520, "deduplicated_size": 310, "nfiles": 10, "original_size": 677}},
        "cache": {"stats": {"total_chunks": 11, "total_csize": 520, "total_size": 677,
                            "total_unique_chunks": 10, "unique_csize": 311, "unique_size": 391}}}
    archive, repo = parse_create_json(json.dumps(one).encode())
    assert (archive.files, archive.original_bytes, archive.compressed_bytes, archive.deduplicated_bytes) == \
        (10, 677, 520, 310)
    assert repo is not None and (repo.unique_compressed_bytes, repo.unique_chunks) == (311, 10)
    two = {"archive": {"name": "a1", "stats": {"nfiles": 11, "original_size": 967,
                                               "store_stats": {"backend_store_volume": 315}}}, "cache": {}}
    archive2, repo2 = parse_create_json(json.dumps(two).encode())
    assert archive2.compressed_bytes is None and archive2.deduplicated_bytes == 315 and repo2 is None
    assert parse_create_json(b"") == (None, None)


def test_prune_and_diff_records() -> None:
    assert prune_action("Keeping archive (rule: daily #1):   a5    Fri, 2026-11-27 [72c5]") == "kept"
    assert prune_action("Pruning archive (1/3):    a3    Fri, 2026-11-27 [d46d]") == "pruned"
    assert prune_action("Would prune:   a3") == "pruned" and prune_action("something else") is None
    assert not diff_changed_content({"changes": [{"added": 0, "removed": 0, "type": "modified"},
                                                 {"type": "mode"}]})  # 1.2 metadata-only
    assert diff_changed_content({"changes": [{"added": 4, "removed": 2, "type": "modified"}]})


def test_redaction() -> None:
    r = Redactor(["s3cret-pass"])
    assert r("Passphrase s3cret-pass wrong for ssh://bob:pw@host/repo") == \
        "Passphrase *** wrong for ssh://bob:***@host/repo"
    assert strip_url_credentials("ssh://bob@host/r") == "ssh://bob@host/r"


def test_read_lines_batches_without_losing_or_splitting_lines() -> None:
    import io
    import os
    import threading

    from borgwatch.borg.process import read_lines

    r, w = os.pipe()
    expected = [f'{{"type": "file_status", "status": "U", "path": "/d/{i}"}}'.encode() for i in range(5000)]

    def writer() -> None:
        # one write per line like borg's line-buffered stderr, a line split across two writes,
        # and a last line without a newline
        for line in expected[:-2]:
            os.write(w, line + b"\n")
        os.write(w, expected[-2][:7])
        os.write(w, expected[-2][7:] + b"\n")
        os.write(w, expected[-1])
        os.close(w)

    echo = io.BytesIO()
    t = threading.Thread(target=writer)
    t.start()
    got = list(read_lines(r, echo))
    t.join()
    os.close(r)
    assert got == expected
    assert echo.getvalue() == b"\n".join(expected)
