"""The borg facts the run stages ask for (parsers, exit-code rules, path syntax), on recorded borg 1.4 output."""

from __future__ import annotations

import json

from helpers.workspace import ROOT

from borgwatch.borg.exitcodes import check_status, completed
from borgwatch.borg.paths import archive_path, path_pattern
from borgwatch.borg.results import archive_names, diff_verdicts, message_path, problem_level

DATA = ROOT / "tests" / "data" / "borg14"


def test_archive_names_in_borgs_order_and_garbage_is_none() -> None:
    assert archive_names((DATA / "list-archives.stdout").read_bytes()) == ["home-1", "home-2"]
    assert archive_names(b"") == []
    assert archive_names(b"not json") is None and archive_names(b'{"archives": [{}]}') is None


def test_diff_verdicts_ignore_metadata_only_changes() -> None:
    lines = [{"path": "a", "changes": [{"type": "modified", "added": 3, "removed": 0}]},
             {"path": "b", "changes": [{"type": "modified", "added": 0, "removed": 0}]},
             {"path": "c", "changes": [{"type": "mode", "old_mode": "-rw-r--r--", "new_mode": "-rwx------"}]}]
    stdout = ("\n".join(json.dumps(line) for line in lines) + "\nnoise\n").encode()
    assert list(diff_verdicts(stdout.splitlines())) == [("a", "modified")]


def test_check_reports_damage_with_rc_1() -> None:
    assert check_status(1) == "error" and check_status(0) == "success" and check_status(143) == "interrupted"
    assert completed(0) and completed(1) and completed(107) and not completed(2) and not completed(137)


def test_problem_levels_skip_borgs_output_loggers() -> None:
    assert problem_level("WARNING", "borg.archiver") == "warning"
    assert problem_level("CRITICAL", "borg.archiver") == "error"
    assert problem_level("ERROR", "borg.output.show-rc") is None and problem_level("INFO", "borg") is None
    # borg 2's prune advises at WARNING level after every prune that deleted something (rc 0)
    assert problem_level("WARNING", "borg.archiver", 'Done. Run "borg compact" to free space.') is None
    assert problem_level("WARNING", "borg.archiver", "/src/x: stat: gone") == "warning"
    assert message_path("/x/y: stat: gone") == "/x/y" and message_path("Repository x: gone") == ""


def test_path_syntax() -> None:
    assert archive_path("/home/x") == "home/x" and archive_path("./rel/y") == "rel/y"
    assert path_pattern("/home/a b") == "pf:home/a b"
