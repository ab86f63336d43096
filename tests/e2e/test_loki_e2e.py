"""Real borg runs through the real CLI with [loki] pointing at the strict fake Loki on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from helpers.loki_receiver import LokiReceiver
from helpers.workspace import PASSPHRASE, Workspace

pytestmark = pytest.mark.slow


@pytest.fixture
def loki() -> Iterator[LokiReceiver]:
    receiver = LokiReceiver()
    yield receiver
    receiver.stop()


def loki_table(url: str, token_file: str, extra: str = "") -> str:
    return (f'[loki]\nurl = "{url}"\ntoken_file = "{token_file}"\ntenant = "ops"\n'
            f'labels = {{ env = "test" }}\n{extra}\n')


def test_real_run_ships_events_and_summary_equal_to_textfile(workspace: Workspace,
                                                            loki: LokiReceiver) -> None:
    token = "tok-e2e-5ecret"
    (workspace.root / "token").write_text(token + "\n")
    workspace.write_config(global_extra=loki_table(loki.url, str(workspace.root / "token")))
    t0 = time.time()
    proc = workspace.run()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    lines = loki.lines()
    kinds = [line["event"] for line in lines]
    assert kinds[0] == "run_started" and kinds[-1] == "run_summary"
    assert {"stage_started", "stage_finished"} <= set(kinds)
    assert "file_status" not in kinds  # not opted in
    for labels, ts, _ in loki.entries:
        assert set(labels) == {"app", "host", "backup_job", "level", "env"}
        assert labels["backup_job"] == "home" and labels["app"] == "borgwatch"
        assert t0 - 1 <= int(ts) / 1e9 <= time.time()
    run_ids = {line["run_id"] for line in lines}
    assert len(run_ids) == 1
    assert all(p.headers["Authorization"] == f"Bearer {token}" and p.headers["X-Scope-OrgID"] == "ops"
               for p in loki.pushes())
    for req in loki.requests:
        assert PASSPHRASE.encode() not in req.body and token.encode() not in req.body

    summary = lines[-1]
    m = workspace.metrics()

    def metric(name: str, **labels: str) -> float | None:
        return m.get((name, frozenset({"backup_job": "home", **labels}.items())))

    assert summary["status"] == "success" and summary["exit_code"] == metric("borgwatch_run_exit_code") == 0
    pairs = {
        "archive_original_bytes": metric("borgwatch_archive_original_bytes"),
        "archive_files": metric("borgwatch_archive_files"),
        "archive_deduplicated_bytes": metric("borgwatch_archive_deduplicated_bytes"),
        "dataset_added": metric("borgwatch_dataset_files", change="added"),
        "dataset_unchanged": metric("borgwatch_dataset_files", change="unchanged"),
        "max_rss_bytes": metric("borgwatch_borg_max_rss_bytes"),
        "read_bytes": metric("borgwatch_borg_io_bytes", direction="read"),
        "cpu_user_seconds": metric("borgwatch_borg_cpu_seconds", mode="user"),
        "duration_seconds": metric("borgwatch_run_duration_seconds"),
        "stage_create_exit_code": metric("borgwatch_stage_exit_code", stage="create"),
    }
    for key, value in pairs.items():
        assert value is not None, key
        assert summary[key] == pytest.approx(value, rel=1e-6, abs=2e-3), key
    assert summary["archive_files"] == 60
    assert metric("borgwatch_sink_failures_total", sink="loki") in (None, 0)
    assert metric("borgwatch_sink_spooled_items", sink="loki") == 0


def test_real_run_survives_a_hung_then_refusing_loki(workspace: Workspace, loki: LokiReceiver) -> None:
    (workspace.root / "token").write_text("t0k3n\n")
    table = loki_table(loki.url, str(workspace.root / "token"), "read_timeout = 1.0\nretries = 1\n")
    workspace.write_config(global_extra=table)
    loki.hang_seconds = 60
    started = time.monotonic()
    proc = workspace.run()
    hung_elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert workspace.value("borgwatch_sink_failures_total", sink="loki") == 1
    spooled = workspace.value("borgwatch_sink_spooled_items", sink="loki")
    assert spooled is not None and spooled >= 4

    loki.hang_seconds = 0
    loki.refuse()
    assert workspace.run().returncode == 0
    spooled2 = workspace.value("borgwatch_sink_spooled_items", sink="loki")
    assert spooled2 is not None and spooled2 > spooled

    loki.restore()
    assert workspace.run().returncode == 0
    assert workspace.value("borgwatch_sink_spooled_items", sink="loki") == 0
    lines = loki.lines()
    assert [line["event"] for line in lines].count("run_summary") == 3
    assert len({line["run_id"] for line in lines}) == 3
    # the hung push (run_started and create's stage_started: create is the first borg a run starts) is
    # ingested late when the fake is released (as a slow Loki may do) and the spooled copies are then
    # duplicates, which Loki (and the fake) drop: at-least-once, nothing lost
    assert loki.arrival_in_order() and loki.duplicates <= 2
    print(f"\nreal run against a hung Loki (read_timeout 1 s): {hung_elapsed:.2f}s wall; "
          f"{len(lines)} lines delivered after the outage")
