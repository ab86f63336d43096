"""Files planted by other local users, kills during writes, mistyped state, hostile `exec` names.

The planted files are made by a real other user (`runuser -u nobody`) in directories that user can
write; borgwatch runs as root, as it does in production. `borgwatch exec NAME -- borg --version` is the
quickest real run: lock, state, textfile at start and at the end, real borg.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.workspace import BORGWATCH, parse_metrics

from borgwatch.errors import UserError
from borgwatch.model import RunResult
from borgwatch.sinks.loki_transport import Entry, Spool
from borgwatch.sinks.textfile import TextfileSink
from borgwatch.store.lock import JobLock
from borgwatch.store.state import load_state

AS_ROOT = os.geteuid() == 0 and shutil.which("runuser") is not None
needs_other_user = pytest.mark.skipif(not AS_ROOT, reason="needs root and runuser (real other user: nobody)")


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory tree user nobody can reach (tmp_path is root's 0700)."""
    root = Path(tempfile.mkdtemp(prefix="borgwatch-hostile-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def as_nobody(*argv: str) -> None:
    subprocess.run(["runuser", "-u", "nobody", "--", *argv], check=True, capture_output=True, timeout=30)


def write_config(root: Path, state_dir: Path, textfile_dir: Path, extra: str = "") -> Path:
    cfg = root / "c.toml"
    cfg.write_text(f'state_dir = "{state_dir}"\ntextfile_dir = "{textfile_dir}"\n{extra}')
    return cfg


def exec_version(cfg: Path, borg: str, name: str = "home", umask: int | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
    def limits() -> None:  # a regression reading /dev/zero must not take the machine's memory with it
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        if umask is not None:
            os.umask(umask)

    return subprocess.run([BORGWATCH, "exec", name, "-c", str(cfg), "--", borg, "--version"], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, preexec_fn=limits)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- item 8: state_dir ---------------------------------------------------------------------------------

def test_state_dir_and_files_get_explicit_modes_under_umask_000(shared: Path, borg: str) -> None:
    state = shared / "var" / "lib" / "borgwatch"
    cfg = write_config(shared, state, shared,
                       f'[loki]\nurl = "http://127.0.0.1:{_closed_port()}"\nmax_delay = 1.0\nretries = 0\n')
    proc = exec_version(cfg, borg, umask=0)
    assert proc.returncode == 0, proc.stderr
    assert mode(state) == 0o700 and mode(state.parent) == 0o755 and mode(state.parent.parent) == 0o755
    assert mode(state / "home.json") == 0o600 and mode(state / "home.lock") == 0o600
    assert mode(state / "spool") == 0o700 and mode(state / "spool" / "loki-home.jsonl") == 0o600
    assert mode(shared / "borgwatch-home.prom") == 0o644  # node_exporter's user must read it


@needs_other_user
def test_state_dir_other_users_can_write_is_refused_and_nothing_is_followed(shared: Path, borg: str) -> None:
    state = shared / "state"
    state.mkdir()
    state.chmod(0o777)  # as an older borgwatch created it under umask 000
    victim = shared / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o600)
    as_nobody("ln", "-s", str(victim), str(state / "home.lock"))
    as_nobody("ln", "-s", str(victim), str(state / "home.json"))
    cfg = write_config(shared, state, shared)
    proc = exec_version(cfg, borg)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"state_dir {state} is writable by other users (mode 0777)" in proc.stderr
    assert "chmod go-w" in proc.stderr
    assert victim.read_text() == "precious\n" and mode(victim) == 0o600
    assert not (shared / "borgwatch-home.prom").exists()


@needs_other_user
def test_state_dir_owned_by_another_user_is_refused(shared: Path, borg: str) -> None:
    state = shared / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    proc = exec_version(write_config(shared, state, shared), borg)
    assert proc.returncode == 2 and "belongs to uid 65534" in proc.stderr and proc.stderr.count("\n") == 1


def test_lock_and_spool_never_open_a_symlink(tmp_path: Path) -> None:
    """Defence in depth under a safe state_dir: symlinks where borgwatch creates or truncates files."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    state = tmp_path / "state"
    (state / "spool").mkdir(parents=True)
    (state / "home.lock").symlink_to(victim)
    with pytest.raises(UserError, match="cannot create lock file"):
        JobLock(state, "home").acquire()
    assert not JobLock(state, "home").held()
    spool = Spool(state / "spool" / "loki-home.jsonl", 10_000)
    (state / "spool" / "loki-home.lock").symlink_to(victim)
    with pytest.raises(OSError):
        spool.save([Entry({"app": "borgwatch"}, "1", "line")])
    (state / "spool" / "loki-home.lock").unlink()
    (state / "spool" / "loki-home.jsonl").symlink_to(victim)
    with pytest.raises(OSError, match="not a regular file"):
        spool.load()
    spool.save([Entry({"app": "borgwatch"}, "1", "line")])  # replaces the link itself
    assert victim.read_text() == "precious\n"
    assert not (state / "spool" / "loki-home.jsonl").is_symlink()


# -- item 9: the existing textfile ---------------------------------------------------------------------

@needs_other_user
@pytest.mark.parametrize("plant", ["fifo", "dev-zero", "root-only-file"])
def test_planted_textfile_neither_hangs_nor_leaks(shared: Path, borg: str, plant: str) -> None:
    textfile_dir = shared / "textfile"
    textfile_dir.mkdir()
    textfile_dir.chmod(0o1777)
    secret = shared / "root-only"
    secret.write_text('borgwatch_archive_files{backup_job="home"} 31337\n')
    secret.chmod(0o600)
    prom = textfile_dir / "borgwatch-home.prom"
    if plant == "fifo":
        as_nobody("mkfifo", str(prom))
    else:
        as_nobody("ln", "-s", "/dev/zero" if plant == "dev-zero" else str(secret), str(prom))
    state = shared / "state"
    cfg = write_config(shared, state, textfile_dir)

    # the start of a run, in-process: what it would have copied into the .prom is visible right after it
    if plant == "root-only-file":
        from borgwatch.config.load import load_config
        result = RunResult(job="home", run_id="r", host="h", started_at=time.time())
        TextfileSink(load_config(str(cfg)), "home").on_start(result)
        assert "31337" not in prom.read_text()

    proc = exec_version(cfg, borg, timeout=60)  # a FIFO used to block here forever
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # /dev/zero: a MemoryError in the sink
    st = os.lstat(prom)
    assert stat.S_ISREG(st.st_mode) and st.st_uid == 0 and "31337" not in prom.read_text()
    assert parse_metrics(prom.read_text())[("borgwatch_run_in_progress", frozenset({("backup_job", "home")}))] == 0
    assert secret.read_text() == 'borgwatch_archive_files{backup_job="home"} 31337\n'


# -- item 6: temp files of killed writes ------------------------------------------------------------------

def test_stale_temp_files_of_the_job_are_removed_and_no_other_jobs(tmp_path: Path, borg: str) -> None:
    state, textfile_dir = tmp_path / "state", tmp_path / "textfile"
    state.mkdir(mode=0o700)
    textfile_dir.mkdir()
    cfg = write_config(tmp_path, state, textfile_dir)
    stale = [state / ".home.json.k3x9_a2b", state / ".home.json.k3x9_a2b.tmp",
             textfile_dir / ".borgwatch-home.prom.q1w2e3r4.tmp"]
    others = [state / ".home.json.json.k3x9_a2b.tmp", state / "home.json.bak",
              textfile_dir / ".borgwatch-home.prom.x.prom.q1w2e3r4.tmp"]
    for path in stale + others:
        path.write_text("{}")
    proc = exec_version(cfg, borg)
    assert proc.returncode == 0, proc.stderr
    assert [p for p in stale if p.exists()] == []
    assert all(p.exists() for p in others)


def test_kill_9_during_runs_leaves_no_temp_files_and_a_consistent_state(tmp_path: Path, borg: str) -> None:
    state, textfile_dir = tmp_path / "state", tmp_path / "textfile"
    textfile_dir.mkdir()
    cfg = write_config(tmp_path, state, textfile_dir)
    rng = random.Random(6)
    argv = [BORGWATCH, "exec", "home", "-c", str(cfg), "--", borg, "--version"]
    for _ in range(8):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before, warning = load_state(state, "home")
    assert warning is None
    done = exec_version(cfg, borg)
    assert done.returncode == 0 and done.stderr == ""
    after, warning = load_state(state, "home")
    assert warning is None
    assert sum(after.runs_total.values()) == sum(before.runs_total.values()) + 1
    leftovers = [p.name for d in (state, textfile_dir) for p in d.iterdir() if p.name.startswith(".")]
    assert leftovers == []


# -- item 12: mistyped state -----------------------------------------------------------------------------

def test_mistyped_state_fields_are_dropped_once_and_repaired(tmp_path: Path, borg: str) -> None:
    state, textfile_dir = tmp_path / "state", tmp_path / "textfile"
    state.mkdir(mode=0o700)
    textfile_dir.mkdir()
    (state / "home.json").write_text(json.dumps({
        "version": 1, "runs_total": {"success": "7", "warning": 2}, "sink_failures_total": None,
        "sink_dropped_total": [1, 2], "last_success_at": "yesterday", "check_last_success_at": 12.5,
        "last_archive": 5, "last_result": {"job": "home", "run_id": "x", "host": "h", "started_at": [1]},
    }))
    cfg = write_config(tmp_path, state, textfile_dir)
    first = exec_version(cfg, borg)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("\n") == 1 and "Traceback" not in first.stderr
    for name in ("runs_total.success", "sink_failures_total", "sink_dropped_total", "last_success_at",
                 "last_archive", "last_result"):
        assert name in first.stderr
    repaired = json.loads((state / "home.json").read_text())
    assert repaired["runs_total"] == {"warning": 2, "success": 1}
    assert repaired["check_last_success_at"] == 12.5  # good fields are kept
    second = exec_version(cfg, borg)
    assert second.returncode == 0 and second.stderr == ""
    assert load_state(state, "home")[0].runs_total == {"warning": 2, "success": 2}


@pytest.mark.parametrize("content", [
    '{"version": 1, "runs_total": null}', '{"version": 1, "runs_total": {"success": true}}',
    '{"version": 1, "last_success_at": NaN}', '{"version": 1, "last_result": {"job": "h"}}',
    '{"version": 1, "last_result": {"job": "h", "run_id": "r", "host": "h", "started_at": 1, "stages": 5}}',
])
def test_load_state_validates_every_field(tmp_path: Path, content: str) -> None:
    (tmp_path / "home.json").write_text(content)
    state, warning = load_state(tmp_path, "home")
    assert warning is not None and "ignored wrongly typed field" in warning
    assert state.runs_total == {} and state.last_success_at is None and state.last_result is None


# -- item 13: exec NAME and exit status ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../outside/pwn", "", "a" * 65, ".hidden"])
def test_exec_refuses_names_that_are_not_job_names(tmp_path: Path, borg: str, name: str) -> None:
    state, textfile_dir = tmp_path / "d" / "state", tmp_path / "d" / "textfile"
    cfg = write_config(tmp_path, state, textfile_dir)
    proc = exec_version(cfg, borg, name=name)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "invalid name" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]  # nothing created anywhere


def test_exec_exits_2_when_the_textfile_cannot_be_written(tmp_path: Path, borg: str) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    proc = exec_version(write_config(tmp_path, tmp_path / "state", blocker), borg)
    assert proc.returncode == 2 and "cannot write metrics" in proc.stderr and "Traceback" not in proc.stderr


# -- item 19: exec's echo of borg's output -------------------------------------------------------------------

def test_exec_redacts_a_url_password_from_borgs_output(tmp_path: Path, borg: str) -> None:
    cfg = write_config(tmp_path, tmp_path / "state", tmp_path)
    url = "ssh://backup:Pw-s3cret-91@127.0.0.1:1/./repo"
    proc = subprocess.run([BORGWATCH, "exec", "home", "-c", str(cfg), "--", borg, "list", url],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "BORG_RSH": "false"},
                          stdin=subprocess.DEVNULL)
    assert proc.returncode != 0
    assert "Pw-s3cret-91" not in proc.stderr + proc.stdout
    assert "backup:***@127.0.0.1" in proc.stderr  # borg's own message, redacted
    assert "carries a password" in proc.stderr
    files = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"Pw-s3cret-91" not in files


def _closed_port() -> int:
    from helpers.workspace import free_port
    return free_port()


def test_redacting_writer_finds_secrets_split_across_writes_and_passes_prompts() -> None:
    import io

    from borgwatch.redact import RedactingWriter, Redactor
    out = io.BytesIO()
    writer = RedactingWriter(out, Redactor(["hunter22"]))
    for chunk in (b"a hun", b"ter22 b\n", b"1 file\r", b"Enter passphrase: ", b"ssh://u:p", b"w-x@h/r"):
        writer.write(chunk)
    assert out.getvalue() == b"a *** b\n1 file\rEnter passphrase: "  # the prompt is not held back
    writer.close()
    assert out.getvalue().endswith(b"ssh://u:***@h/r") and b"hunter22" not in out.getvalue()
