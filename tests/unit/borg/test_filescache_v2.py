"""borg 2's per-series files cache as borgwatch reads it, written by the real borg 2.0.0b23."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers.borg import Repo2, make_repo2, needs_borg2
from helpers.filescache_engine import abc_tree, assert_abc_entries, make_newest

from borgwatch.borg.feature import Feature, available
from borgwatch.borg.filescache_v2 import FilesCacheError, locate, read_entries
from borgwatch.borg.version import BORG2_TESTED, BorgVersion

B23 = BorgVersion(2, 0, 0, BORG2_TESTED)


def _create(repo: Repo2, series: str, src: Path, env: dict[str, str] | None = None, *extra: str) -> bytes:
    done = subprocess.run([repo.borg, "create", "-r", str(repo.path), "--json", *extra, series, str(src)],
                          env={**repo.env(), **(env or {})}, capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=300, check=True)
    return done.stdout


@pytest.mark.slow
@needs_borg2()
def test_age_zero_entries_are_the_files_borg2_memorized_less_themake_newest(tmp_path: Path) -> None:
    repo = make_repo2(tmp_path)
    src, files = abc_tree(tmp_path)
    stdout = _create(repo, "nas-home", src)
    path = locate(stdout, repo.env(), B23)
    assert path.name == "files." + hashlib.sha256(b"nas-home").hexdigest()  # one cache per archive series
    assert path.parent == Path(json.loads(stdout)["cache"]["path"]) and path.is_file()
    assert_abc_entries(list(read_entries(path)), files)
    os.utime(files["a"], ns=(0, 10**18))
    mtimes = {e[2]: e[4] for e in read_entries(path, mtime_mode=True)}
    assert mtimes[os.lstat(files["c"]).st_ino] == os.lstat(files["c"]).st_mtime_ns
    assert mtimes[os.lstat(files["a"]).st_ino] != os.lstat(files["a"]).st_mtime_ns  # borg's, not the disk's


@pytest.mark.slow
@needs_borg2()
def test_series_have_their_own_cache_a_gone_file_ages_and_the_suffix_is_shared(tmp_path: Path) -> None:
    repo = make_repo2(tmp_path)
    src, files = abc_tree(tmp_path)
    first = locate(_create(repo, "nas-home", src), repo.env(), B23)
    c_inode = os.lstat(files["c"]).st_ino
    files["c"].unlink()
    make_newest(files["newest"], [files["a"], files["b"]])
    other = locate(_create(repo, "nas-db", src), repo.env(), B23)
    assert other.parent == first.parent and other.name != first.name
    assert c_inode in {e[2] for e in read_entries(first)}  # another series' create left this one alone
    assert {e[2] for e in read_entries(other)} == {os.lstat(files[n]).st_ino for n in "ab"}
    again = locate(_create(repo, "nas-home", src), repo.env(), B23)
    assert again == first
    assert {e[2] for e in read_entries(first)} == {os.lstat(files[n]).st_ino for n in "ab"}
    assert c_inode in {e[2] for e in read_entries(first, max_age=1)}  # kept by borg until BORG_FILES_CACHE_TTL

    suffixed = {"BORG_FILES_CACHE_SUFFIX": "job2"}
    for series in ("nas-home", "nas-db"):
        shared = locate(_create(repo, series, src, suffixed), suffixed, B23)
        assert shared.name == "files.job2" and shared.parent == first.parent
        assert {e[2] for e in read_entries(shared)} == {os.lstat(files[n]).st_ino for n in "ab"}
    # a create with the files cache disabled leaves the last one in place: the caller must not read it
    before = first.read_bytes()
    _create(repo, "nas-home", src, {}, "--files-cache=disabled")
    assert first.read_bytes() == before


@pytest.mark.slow
@needs_borg2()
def test_a_damaged_cache_or_config_is_one_line_never_a_wrong_entry(tmp_path: Path) -> None:
    repo = make_repo2(tmp_path)
    src, _ = abc_tree(tmp_path)
    path = locate(_create(repo, "nas-home", src), repo.env(), B23)
    good = path.read_bytes()
    config = (path.parent / "config").read_text()
    flipped = bytearray(good)
    flipped[-10] ^= 0x01  # inside the last entry's chunk id: still a well-formed entry, other content
    path.write_bytes(bytes(flipped))
    with pytest.raises(FilesCacheError, match="fails its integrity check") as err:
        list(read_entries(path))
    assert "\n" not in str(err.value)
    path.write_bytes(good[:-3])
    with pytest.raises(FilesCacheError, match="integrity check|not in a format"):
        list(read_entries(path))
    path.write_bytes(good + b"\xc0")  # one more msgpack object (nil) after the entries
    with pytest.raises(FilesCacheError, match="not in a format borgwatch knows"):
        list(read_entries(path))
    path.write_bytes(good)
    assert len(list(read_entries(path))) == 3
    (path.parent / "config").write_text(config.replace(path.name, "files.other"))
    with pytest.raises(FilesCacheError, match="no integrity record"):
        list(read_entries(path))
    (path.parent / "config").unlink()
    with pytest.raises(FilesCacheError, match="cache config .* does not exist"):
        list(read_entries(path))
    with pytest.raises(FilesCacheError, match="does not exist .*another archive series"):
        list(read_entries(path.with_name("files.nope")))


def _cache(tmp: Path, content: bytes) -> Path:
    path = tmp / "files.x"
    path.write_bytes(content)
    record = json.dumps({"algorithm": "SHA256", "digests": {"final": "0" * 64}})
    (tmp / "config").write_text(f"[cache]\nversion = 1\n\n[integrity]\nfiles.x = {record}\n")
    return path


@pytest.mark.parametrize("content", [
    b"\x93\x01\x02\x03",  # not (path_hash, entry)
    b"\x92\xc4\x02ab\x96\x00\x01\x02\x03\x04\x90",  # a 2-byte path hash
    b"\x92\xc4\x20" + b"k" * 32 + b"\x95\x00\x01\x02\x03\x90",  # borg 1.x's 5-field entry
    b"\x92\xc4\x20" + b"k" * 32 + b"\x96\x00\x01\x05\x03\x04\x91\x92\xc4\x01i\x05",  # a 1-byte chunk id
    b"\x92\xc4\x20" + b"k" * 32 + b"\x96\x00\x01\x06\x03\x04\x91\x92\xc4\x20" + b"i" * 32 + b"\x05",  # 5 != 6
])
def test_an_unknown_entry_shape_is_one_line_never_a_traceback(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(FilesCacheError, match="not in a format borgwatch knows") as err:
        list(read_entries(_cache(tmp_path, content)))
    assert "\n" not in str(err.value)


def test_only_the_read_shape_is_located_and_a_create_must_name_cache_and_series() -> None:
    stdout = b'{"cache": {"path": "/c"}, "archive": {"name": "nas-home"}, "repository": {"id": "ab"}}'
    assert locate(stdout, {}, B23) == Path("/c") / ("files." + hashlib.sha256(b"nas-home").hexdigest())
    assert locate(stdout, {"BORG_FILES_CACHE_SUFFIX": "s"}, B23) == Path("/c/files.s")
    for version in (BorgVersion(2, 0, 0, "2.0.0b22"), BorgVersion(1, 4, 0, "1.4.0")):
        with pytest.raises(FilesCacheError, match="not the per-series one"):
            locate(stdout, {}, version)
    for bad in (b"", b"not json", b'{"cache": {"path": "/c"}}', b'{"cache": {"path": ""}, "archive": {"name": "x"}}'):
        with pytest.raises(FilesCacheError, match="names no cache path"):
            locate(bad, {}, B23)
    assert available(Feature.NFILES_EVERY_NAME, B23) and not available(Feature.NFILES_EVERY_NAME, None)
    assert available(Feature.FILES_CACHE_V2, B23) and not available(Feature.FILES_CACHE_V1, B23)


# borg 2.0.0b23 `diff --json-lines` between two archives of a series (timestamps shortened): a grown file,
# touch only, chmod only, a directory replaced by a file, a new file, a new symlink, two removed files
BORG2_DIFF = [
    {"changes": [{"item1": "2026-12-02T04:01:47+00:00", "item2": "2026-12-02T04:01:49+00:00", "type": "ctime"},
                 {"item1": "2026-12-02T04:01:47+00:00", "item2": "2026-12-02T04:01:49+00:00", "type": "mtime"}],
     "path": "src/d"},
    {"changes": [{"added": 13, "removed": 7, "type": "modified"},
                 {"item1": "2026-12-02T04:01:47+00:00", "item2": "2026-12-02T04:01:49+00:00", "type": "ctime"}],
     "path": "src/d/f1"},
    {"changes": [{"item1": "2026-12-02T04:01:47+00:00", "item2": "2026-12-02T04:01:49+00:00", "type": "mtime"}],
     "path": "src/d/f2"},
    {"changes": [{"item1": "-rw-r--r--", "item2": "-rw-------", "type": "changed mode"}], "path": "src/d/f3"},
    {"changes": [{"item1": "drwxr-xr-x", "item2": "-rw-r--r--", "type": "changed mode"},
                 {"item1": "d", "item2": "-", "type": "changed type"}], "path": "src/e"},
    {"changes": [{"added": 4, "removed": 0, "type": "added"}], "path": "src/d/new"},
    {"changes": [{"type": "added link"}], "path": "src/d/sym"},
    {"changes": [{"added": 0, "removed": 7, "type": "removed"}], "path": "src/d/f4"},
    {"changes": [{"added": 0, "removed": 2, "type": "removed"}], "path": "src/e/x"},
    {"changes": [{"item1": "-", "item2": "l", "type": "changed type"}], "path": "src/d/f5"},
]


def test_borg_diff_verdicts_read_borg2_lines_and_its_type_changes() -> None:
    from borgwatch.borg.results import diff_verdicts

    stdout = "\n".join(json.dumps(line) for line in BORG2_DIFF).encode()
    assert list(diff_verdicts(stdout.splitlines())) == [
        ("src/d/f1", "modified"), ("src/e", "added"), ("src/d/new", "added"),
        ("src/d/f4", "removed"), ("src/e/x", "removed"), ("src/d/f5", "removed")]
