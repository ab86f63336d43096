"""The version feature table and the dialect the argv builders and parsers choose through it."""

from __future__ import annotations

import json
from pathlib import Path

from borgwatch.borg import argv
from borgwatch.borg.feature import FEATURES, Feature, available, key
from borgwatch.borg.results import archive_names, files_stats, parse_create_json
from borgwatch.borg.version import BorgVersion
from borgwatch.config.load import parse_config
from borgwatch.config.schema import CheckConfig, CompactConfig
from borgwatch.model import Stage
from borgwatch.run.plan import plan_job

V12 = BorgVersion(1, 2, 4, "1.2.4")
V14 = BorgVersion(1, 4, 3, "1.4.3")
B21 = BorgVersion(2, 0, 0, "2.0.0b21")
B23 = BorgVersion(2, 0, 0, "2.0.0b23")
JOB = parse_config('''
[jobs.home]
repository = "ssh://u@host/./repo"
paths = ["/home"]
[jobs.home.prune]
keep_within = "2d"
keep_last = 3
keep_daily = 7
''').jobs["home"]


def test_prerelease_sorts_before_its_release_and_after_older_betas() -> None:
    assert key(B21) < key(B23) < key(BorgVersion(2, 0, 0, "2.0.0rc1")) < key(BorgVersion(2, 0, 0, "2.0.0"))
    assert key(V14) < key(B21) and key(V12) < key(V14)


def test_every_feature_has_a_range_and_the_table_splits_the_dialects() -> None:
    assert set(FEATURES) == set(Feature)
    assert available(Feature.REPO_OPTION, B23) and not available(Feature.REPO_OPTION, V14)
    assert available(Feature.CHECKPOINTS, V12) and not available(Feature.CHECKPOINTS, B23)
    # --keep-within / --keep-last left in b22: b21 still has them, b23 has --keep instead
    assert available(Feature.KEEP_WITHIN, B21) and not available(Feature.KEEP, B21)
    assert available(Feature.KEEP, B23) and not available(Feature.KEEP_WITHIN, B23)
    assert not available(Feature.MODERN_EXIT_CODES, V12) and available(Feature.MODERN_EXIT_CODES, V14)
    assert available(Feature.COMPRESSED_SIZE, None)  # no version named: the 1.4 dialect


def test_borg2_argv_takes_repo_option_and_series_names() -> None:
    c = argv.create("borg", JOB, "nas-home", 30, list_files=True, version=B23)
    assert c[c.index("--repo") + 1] == "ssh://u@host/./repo" and c[-2:] == ["nas-home", "/home"]
    assert not any("::" in a for a in c)
    ls = argv.list_archives("borg", "/r", 5, "nas-home", checkpoints=True, version=B23)
    assert ls[1] == "repo-list" and ls[ls.index("--match-archives") + 1] == "nas-home"
    assert "--consider-checkpoints" not in ls and ls[-1] != "/r"
    assert argv.list_archives("borg", "/r", 5, "x-[0-9]*", version=B23)[-1] == "sh:x-[0-9]*"
    assert argv.info_repository("borg", "/r", 5, version=B23)[1] == "repo-info"
    d = argv.diff("borg", "/r", argv.archive_id("ab12"), "aid:cd34", 5, ["p"], version=B23)
    assert d[-3:] == ["aid:ab12", "aid:cd34", "p"] and d[d.index("--repo") + 1] == "/r"
    assert argv.list_items("borg", "/r", "aid:ab", 5, version=B23)[-1] == "aid:ab"
    assert argv.init_repository("borg", "/r", version=B23)[1:] == ["repo-create", "--repo", "/r", "--encryption",
                                                                  "aes256-ocb"]
    assert argv.init_repository("borg", "/r", version=V12)[1:] == ["init", "--encryption", "repokey", "/r"]
    # the 1.x dialect is unchanged when the version is named
    assert argv.list_archives("borg", "/r", 5, "g*", checkpoints=True, version=V12)[-3:] == [
        "g*", "--consider-checkpoints", "/r"]


def test_the_diff_names_a_borg2_archive_by_id_and_finds_the_previous_by_id() -> None:
    assert argv.archive_ref("nas-home", "ab12cd", B23) == "aid:ab12cd"
    assert argv.archive_ref("nas-home", "", B23) == ""  # no id reported: nothing the diff may name
    assert argv.archive_ref("nas-home-2026", "ab12cd", V14) == "nas-home-2026"
    listing = json.dumps({"archives": [{"name": "nas-home", "id": "01ff"}, {"name": "nas-home", "id": "02ee"}]})
    assert archive_names(listing.encode(), B23) == ["aid:01ff", "aid:02ee"]  # one series, two archives
    assert archive_names(listing.encode(), V14) == ["nas-home", "nas-home"]


def test_the_plan_turns_the_diff_on_only_for_the_borg2_whose_files_cache_it_reads() -> None:
    config = parse_config('[jobs.home]\nrepository = "/r"\npaths = ["/home"]\n')
    on = plan_job(config, "home", "nas", Path("/state"), B23)
    assert Stage.DIFF in on.stages and on.diff_off_why == ""
    off = plan_job(config, "home", "nas", Path("/state"), B21)
    assert Stage.DIFF not in off.stages
    assert off.diff_off_why.startswith("jobs.home.dataset_diff is off with borg 2.0.0b21: borgwatch reads the "
                                       "files cache of borg 2.0.0b23 only")
    assert Stage.DIFF in plan_job(config, "home", "nas", Path("/state"), V12).stages


def test_borg2_prune_compact_check_argv() -> None:
    p = argv.prune("borg", JOB, JOB.prune, "nas-home", 5, version=B23)
    assert p[p.index("--keep") + 1] == "2d" and p[p.index("--keep-daily") + 1] == "7"
    assert "--keep-within" not in p and "--keep-last" not in p and p[p.index("--match-archives") + 1] == "nas-home"
    assert argv.unsupported_keep_rules(JOB.prune, B23) == ["keep_last"]
    assert argv.unsupported_keep_rules(JOB.prune, V14) == []
    [warning] = argv.dialect_warnings(JOB, "home", B23)
    assert warning.startswith("jobs.home.prune.keep_last: borg 2.0.0b23 has no --keep-last")
    assert argv.dialect_warnings(JOB, "home", V14) == []
    old = argv.prune("borg", JOB, JOB.prune, "g", 5, version=B21)
    assert old[old.index("--keep-last") + 1] == "3" and "--match-archives" in old and "--keep" not in old
    for a in (argv.compact("borg", JOB, CompactConfig(threshold=10), 5, version=B23),
              argv.check("borg", JOB, CheckConfig(), 5, version=B23)):
        assert a[a.index("--repo") + 1] == "ssh://u@host/./repo" and a.count("ssh://u@host/./repo") == 1


def test_series_name_and_match_of_a_job() -> None:
    assert argv.series_name("{hostname}-{job}-{now}", "home", "nas") == "nas-home"
    assert argv.series_name("{job}_{now:%Y-%m-%d}_{hostname}", "db", "nas") == "db_nas"
    assert argv.series_name("{now}", "db", "nas") == "db"
    assert argv.archive_name(JOB, "home", "nas", B23) == "nas-home"
    assert argv.archive_name(JOB, "home", "nas", V14) == argv.render_name(JOB.archive_name, "home", "nas")
    assert argv.archive_match(JOB, "home", "nas", B23) == "nas-home"
    assert argv.archive_match(JOB, "home", "nas", V14) == argv.archive_glob(JOB, "home", "nas")


def test_create_json_of_borg2_has_files_stats_and_no_compressed_size() -> None:
    doc = {"archive": {"name": "nas-home", "id": "ab", "stats": {
        "files_stats": {"A": 3, "d": 1}, "nfiles": 3, "original_size": 463,
        "store_stats": {"backend_store_volume": 3257}}}, "cache": {"path": "/c"}}
    raw = json.dumps(doc).encode()
    archive, repo = parse_create_json(raw, B23)
    assert archive is not None and archive.compressed_bytes is None and archive.deduplicated_bytes == 3257
    assert repo is None and files_stats(raw, B23) == {"A": 3, "d": 1} and files_stats(raw, V14) is None
    one = {"archive": {"name": "a", "stats": {"original_size": 9, "compressed_size": 5, "deduplicated_size": 2,
                                              "nfiles": 1}}, "cache": {"stats": {"unique_size": 1}}}
    archive1, repo1 = parse_create_json(json.dumps(one).encode(), V14)
    assert archive1 is not None and (archive1.compressed_bytes, archive1.deduplicated_bytes) == (5, 2)
    assert repo1 is not None and repo1.unique_bytes == 1


def test_command_of_a_users_command_line_skips_options_and_their_values() -> None:
    assert argv.command_of(["borg", "-r", "/r", "--lock-wait", "5", "create", "--json", "x"]) == "create"
    assert argv.command_of(["borg", "--repo=/r", "--umask", "0077", "repo-list"]) == "repo-list"
    assert argv.command_of(["borg", "--log-json", "prune", "-a", "x"]) == "prune"
    assert argv.command_of(["borg", "--version"]) == ""
