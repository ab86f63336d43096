"""borg's files cache as borgwatch reads it, written by real borg 1.4 (venv) and 1.2 (Debian)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers.borg import Repo, borg_binaries, make_repo
from helpers.filescache_engine import abc_tree, assert_abc_entries, make_newest

from borgwatch.borg import filescache
from borgwatch.borg.filescache import FilesCacheError, locate, read_entries
from borgwatch.borg.version import BorgVersion


def _create(repo: Repo, name: str, src: Path, env: dict[str, str] | None = None) -> bytes:
    done = subprocess.run([repo.borg, "create", "--json", f"{repo.path}::{name}", str(src)],
                          env={**repo.env(), **(env or {})}, capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=300, check=True)
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("borg", borg_binaries())
def test_age_zero_entries_are_the_files_borg_memorized_less_themake_newest(tmp_path: Path, borg: str) -> None:
    repo = make_repo(tmp_path, borg)
    src, files = abc_tree(tmp_path)
    stdout = _create(repo, "a1", src)
    path = locate(stdout, repo.env(), None)
    assert path.name == "files" and path.parent.name == json.loads(stdout)["repository"]["id"]
    assert_abc_entries(list(read_entries(path)), files)


@pytest.mark.slow
@pytest.mark.parametrize("borg", borg_binaries())
def test_a_file_gone_ages_and_the_suffix_names_another_cache(tmp_path: Path, borg: str) -> None:
    repo = make_repo(tmp_path, borg)
    src, files = abc_tree(tmp_path)
    c_inode = os.lstat(files["c"]).st_ino
    c_key = next(e[0] for e in read_entries(locate(_create(repo, "a1", src), repo.env(), None)) if e[2] == c_inode)
    files["c"].unlink()
    make_newest(files["newest"], [files["a"], files["b"]])
    path = locate(_create(repo, "a2", src), repo.env(), None)
    aged: list[bytes] = []
    assert {e[2] for e in read_entries(path, aged=aged)} == {os.lstat(files[n]).st_ino for n in "ab"}
    assert c_inode in {e[2] for e in read_entries(path, max_age=1)}  # kept by borg until BORG_FILES_CACHE_TTL
    assert aged == [c_key]  # the one path borg did not visit: the newest one it read is not there at all

    suffixed = {"BORG_FILES_CACHE_SUFFIX": "job2"}
    other = locate(_create(repo, "b1", src, suffixed), suffixed, None)
    assert other.name == "files.job2" and other.parent == path.parent
    assert {e[2] for e in read_entries(other)} == {os.lstat(files[n]).st_ino for n in "ab"}


def test_borg2_is_refused_with_one_line() -> None:
    with pytest.raises(FilesCacheError, match="per archive series") as err:
        locate(b'{"cache": {"path": "/x"}, "repository": {"id": "ab"}}', {}, BorgVersion(2, 0, 0, "2.0.0b14"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("stdout", [b"", b"not json", b'{"archive": {}}', b'{"cache": {"path": ""}, '
                                    b'"repository": {"id": "ab"}}'])
def test_a_create_without_a_cache_path_is_refused(stdout: bytes) -> None:
    with pytest.raises(FilesCacheError, match="no cache path"):
        locate(stdout, {}, BorgVersion(1, 4, 0, "1.4.0"))


@pytest.mark.parametrize("content", [b"\x93\x01\x02\x03", b"\x92\xc4\x02ab\x95\x00\x01\x02\x03\x90",
                                     b"\x92\xc4\x20" + b"k" * 32 + b"\x95\x00\x01\x02\x03\x91\x05"])
def test_an_unknown_format_is_one_line_never_a_traceback(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "files"
    path.write_bytes(content)
    with pytest.raises(FilesCacheError, match="not in a format borgwatch knows") as err:
        list(read_entries(path))
    assert "\n" not in str(err.value)


def test_a_missing_cache_says_why(tmp_path: Path) -> None:
    with pytest.raises(FilesCacheError, match="does not exist"):
        list(read_entries(tmp_path / "files"))


def test_diff_verdicts_see_a_directory_replaced_by_a_file_and_skip_metadata() -> None:
    from borgwatch.borg.results import diff_verdicts

    lines = [{"path": "d0", "changes": [{"type": "mode", "old_mode": "drwxr-xr-x", "new_mode": "-rw-r--r--"}]},
             {"path": "f", "changes": [{"type": "mode", "old_mode": "-rw-r--r--", "new_mode": "lrwxrwxrwx"}]},
             {"path": "c", "changes": [{"type": "mode", "old_mode": "-rw-r--r--", "new_mode": "-rw-------"}]},
             {"path": "n", "changes": [{"type": "added", "size": 3}]},
             {"path": "m", "changes": [{"type": "modified", "added": 3, "removed": 3}]},
             {"path": "t", "changes": [{"type": "modified", "added": 0, "removed": 0}]}]  # 1.2: metadata only
    stdout = "\n".join(json.dumps(line) for line in lines).encode()
    assert list(diff_verdicts(stdout.splitlines())) == [("d0", "added"), ("f", "removed"), ("n", "added"),
                                                       ("m", "modified")]


def test_create_lists_only_what_the_files_cache_diff_needs_and_extra_args_can_refuse_it() -> None:
    from borgwatch.borg import argv
    from borgwatch.config.load import parse_config

    job = parse_config('[jobs.home]\nrepository = "/r"\npaths = ["/home"]\n').jobs["home"]
    a = argv.create("borg", job, "x", 1, list_files=True, list_filter=argv.FILES_CACHE_FILTER)
    assert a[a.index("--list") + 1:a.index("--list") + 3] == ["--filter", "AMEhC"]
    assert "--filter" not in argv.create("borg", job, "x", 1, list_files=False, list_filter="AMEhC")
    assert "--filter" in argv.files_cache_refusal(["--filter", "AME"])
    assert "--filter" in argv.files_cache_refusal(["--filter=AME"])
    assert "disabled" in argv.files_cache_refusal(["--files-cache=disabled"])
    assert argv.files_cache_refusal(["--files-cache", "mtime,size"]) == ""
    assert argv.files_cache_mode(["--files-cache", "mtime,size"]) == "mtime,size"


def _cache(tmp: Path, *entries: tuple[bytes, tuple[object, ...]]) -> Path:
    import msgpack

    path = tmp / "files"
    path.write_bytes(b"".join(msgpack.packb(entry) for entry in entries))
    return path


def test_digests_bigints_and_ages_as_borg_writes_them(tmp_path: Path) -> None:
    ids = [bytes([n]) * 32 for n in range(3)]
    big = (1 << 70).to_bytes(10, "little", signed=True)  # borg's bigint beyond int64
    path = _cache(tmp_path, (b"a" * 32, (0, 1, 10, 5, [ids[0]])), (b"b" * 32, (0, 2, 20, big, ids)),
                  (b"c" * 32, (0, 3, 30, 5, ids[::-1])), (b"d" * 32, (0, 4, 0, 5, [])),
                  (b"e" * 32, (2, 5, 10, 5, [ids[0]])))
    entries = list(read_entries(path))
    assert [e[0] for e in entries] == [k * 16 for k in (b"a", b"b", b"c", b"d")]  # 16 of 32 bytes; age 2 skipped
    assert entries[0][1] == ids[0][:16]  # a one-chunk file: its chunk id is its content identity
    assert entries[1][1] != entries[2][1]  # the same chunks in another order are other content
    assert len({e[1] for e in entries}) == 4 and all(len(e[1]) == 16 for e in entries)
    assert entries[1][4] == 1 << 70
    assert [e[0] for e in read_entries(path, max_age=2)][-1] == b"e" * 16
    aged: list[bytes] = []
    assert len(list(read_entries(path, aged=aged))) == 4 and aged == [b"e" * 16]


def test_older_keys_are_kept_up_to_a_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filescache, "AGED_KEYS", 2)
    path = _cache(tmp_path, *((bytes([n]) * 32, (1, n, 1, 5, [])) for n in range(3)))
    aged: list[bytes] = []
    assert list(read_entries(path, aged=aged)) == [] and aged == [b"\x00" * 16, b"\x01" * 16]


@pytest.mark.parametrize("entry", [(b"k" * 32, (0, 1.5, 1, 1, [])), (b"k" * 32, (0, 1, 1, "now", [])),
                                   (b"k" * 32, (0, 1, 1, 1, [7])), (b"k" * 32, (0, -1, 1, 1, [])),
                                   (b"k" * 32, (0, 1, 1, 1, [b"a" * 32, 7])), (b"k" * 32, ("0", 1, 1, 1, []))])
def test_a_field_of_another_type_is_an_unknown_format(tmp_path: Path, entry: tuple[bytes, tuple[object, ...]]) -> None:
    with pytest.raises(FilesCacheError, match="not in a format borgwatch knows"):
        list(read_entries(_cache(tmp_path, entry)))
