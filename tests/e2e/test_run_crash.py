"""kill -9 at random points of a run (create, the diff, the end-of-run writes), several times in a row: the
next normal run must succeed, count what ``borg diff`` counts against the archive it names as its previous
one (the last one a run recorded to the end), or say the diff is not exact, and leave no temp file and no
borg behind."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time

import psutil
import pytest
from helpers.workspace import BORGWATCH, Workspace, parse_metrics
from test_run_borg import archives, ground_truth
from test_run_robust import borg_children, wait_gone

pytestmark = pytest.mark.slow
KNOWN_FILES = {"home.json", "home.lock", "home.snapshot.db", "borg-version.json"}


def mutate(ws: Workspace, rng: random.Random) -> None:
    files = sorted(ws.src.rglob("*.bin"))
    for f in rng.sample(files, 40):  # same size, new content: only content identities can tell
        f.write_bytes(bytes(b ^ rng.randrange(1, 256) for b in f.read_bytes()))
    for f in rng.sample(files, 10):
        f.write_bytes(f.read_bytes() + b"grown")
    for f in rng.sample(files, 5):
        f.unlink(missing_ok=True)
    for i in range(5):
        (ws.src / "d1" / f"new-{rng.randrange(1 << 30)}-{i}.bin").write_bytes(rng.randbytes(rng.randint(10, 900)))
    for i in range(3):
        (ws.src / "d2" / f"touched-{i}.bin").write_bytes(b"t" * 100)  # then only touched: same content
        os.utime(ws.src / "d2" / f"touched-{i}.bin", (time.time() + rng.randint(1, 99),) * 2)


def kill_point(ws: Workspace, proc: subprocess.Popen[bytes], how: str, rng: random.Random,
               typical: float) -> None:
    """Wait for the chosen moment of the run, then kill -9 borgwatch."""
    deadline = time.monotonic() + max(30.0, 3 * typical)
    if how == "random":
        time.sleep(rng.uniform(0, typical))
    else:
        while proc.poll() is None and time.monotonic() < deadline:
            running = _cmdlines(borg_children(ws))
            if how == "create" and any("create" in cmd for cmd in running):
                break
            snapshot = ws.state_dir / "home.snapshot.db.new"
            if how == "diff" and snapshot.exists() and not any("create" in cmd for cmd in running):
                break  # borg create committed, the snapshot is not promoted yet
            if how == "record" and ws.prom.exists() and parse_metrics(ws.prom.read_text()).get(
                    ("borgwatch_run_in_progress", frozenset({("backup_job", "home")}))) == 0:
                break  # the textfile is written: the state write comes next
            time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _cmdlines(procs: list[psutil.Process]) -> list[list[str]]:
    out = []
    for p in procs:
        with contextlib.suppress(psutil.Error):  # it ended meanwhile
            out.append(p.cmdline())
    return out


def test_kill_9_at_random_points_then_a_normal_run_tells_the_truth(workspace: Workspace) -> None:
    ws = workspace
    seed = int(os.environ.get("BORGWATCH_CRASH_SEED") or time.time())
    rng = random.Random(seed)
    from helpers.workspace import make_tree
    make_tree(ws.src / "bulk", files=1000, seed=seed)
    ws.write_config('dataset_diff = "exact"\n')
    time.sleep(1.05)
    t0 = time.monotonic()
    assert ws.run().returncode == 0
    typical = time.monotonic() - t0
    kills: list[str] = []
    points = ["random", "create", "diff", "record", "random", "diff"]  # every kind of moment, shuffled
    rng.shuffle(points)
    for i, how in enumerate(points):
        mutate(ws, rng)
        if ws.prom.exists():
            ws.prom.unlink()  # so that "record" waits for this run's own write
        time.sleep(1.05)
        proc = subprocess.Popen([BORGWATCH, "run", "home", "-c", str(ws.config)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        kill_point(ws, proc, how, rng, typical)
        kills.append(how)
        assert wait_gone(ws) == [], f"seed {seed}: borg outlived borgwatch (kill {i}: {how})"
    mutate(ws, rng)
    time.sleep(1.05)
    before = archives(ws)
    proc = ws.run("--json")
    assert proc.returncode == 0, f"seed {seed}, kills {kills}: {proc.stderr}"
    result = json.loads(proc.stdout)
    after = archives(ws)
    assert len(after) == len(before) + 1
    dataset = result["dataset"]
    # the job's own record says which archive it compares with: the last one a run saw to the end
    assert result["previous_archive"] in before, f"seed {seed}, kills {kills}"
    truth = ground_truth(ws, result["previous_archive"], after[-1])
    if dataset["exact"]:
        assert {k: dataset[k] for k in truth} == truth, f"seed {seed}, kills {kills}: {dataset}"
    else:
        assert "not exact" in proc.stderr
    assert ws.value("borgwatch_run_in_progress") == 0
    leftovers = {p.name for p in ws.state_dir.iterdir()} - KNOWN_FILES
    assert leftovers == set(), f"seed {seed}, kills {kills}: temp files left {leftovers}"
    assert [p.name for p in ws.textfile_dir.iterdir()] == [ws.prom.name]
