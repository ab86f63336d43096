"""`borgwatch drill` through the run lifecycle's sinks (real borg): its events in the strict loopback Loki,
the drill's own ping check (never the backup's), its series in the real Pushgateway beside the run's, and
its record kept when Loki is down."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import pytest
from helpers.loki_receiver import LokiReceiver
from helpers.servers import PUSHGATEWAY, pushgateway, receiver
from helpers.workspace import PASSPHRASE, Workspace, parse_metrics
from test_drill_borg import damage_largest_file

pytestmark = pytest.mark.slow


def configure(ws: Workspace, loki: str, gateway: str | None, pings: str, loki_extra: str = "") -> None:
    (ws.root / "drilltmp").mkdir(exist_ok=True)
    gateway_table = f'[pushgateway]\nurl = "{gateway}"\n' if gateway else ""
    ws.write_config(
        f'[jobs.home.ping]\nstart = "{pings}/run-start"\nsuccess = "{pings}/run-ok"\nfail = "{pings}/run-fail"\n'
        f'[jobs.home.drill]\nevery = "30d"\nsample_percent = 100\nmax_files = 1000\nmax_bytes = 50000000\n'
        f'temp_dir = "{ws.root / "drilltmp"}"\n'
        f'[jobs.home.drill.ping]\nstart = "{pings}/drill-start"\nsuccess = "{pings}/drill-ok"\n'
        f'fail = "{pings}/drill-fail"\n',
        global_extra=f'hostname = "nas1"\n[loki]\nurl = "{loki}"\n{loki_extra}{gateway_table}')


def gateway_series(url: str) -> dict[tuple[str, frozenset], float]:
    series = parse_metrics(urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode())
    group = {("job", "borgwatch"), ("instance", "nas1"), ("backup_job", "home")}
    return {(name, labels - group): v for (name, labels), v in series.items() if group <= labels}


@pytest.mark.skipif(PUSHGATEWAY is None, reason="prometheus-pushgateway not installed")
def test_a_drill_reaches_loki_its_own_ping_check_and_the_gateway_beside_the_runs_series(workspace: Workspace) -> None:
    ws = workspace
    (ws.src / "big.bin").write_bytes(os.urandom(3_000_000))
    time.sleep(1.05)
    with LokiReceiver() as loki, pushgateway(ws.root) as gateway, receiver() as pings:
        configure(ws, loki.url, gateway, pings.url)
        ws.run(check=True)  # the backup drills too (first drill is due): its drill pings the drill check
        assert [r.path for r in pings.requests] == ["/run-start", "/run-ok", "/drill-ok"]
        run_id = {line["run_id"] for line in loki.lines()}
        del pings.requests[:]

        proc = ws.borgwatch("drill", "home", "-c", str(ws.config))
        assert proc.returncode == 0, proc.stderr
        assert [(r.method, r.path) for r in pings.requests] == [("GET", "/drill-start"), ("POST", "/drill-ok")]
        body = json.loads(pings.requests[-1].body)
        assert body["status"] == "success" and body["files_verified"] == 61
        drill_lines = [line for line in loki.lines() if line["run_id"] not in run_id]
        assert [line["event"] for line in drill_lines] == ["stage_started", "drill_summary", "stage_finished"]
        assert drill_lines[1]["files_verified"] == 61 and drill_lines[1]["status"] == "success"
        assert all(labels["backup_job"] == "home" for labels, _, _ in loki.entries)
        pushed = gateway_series(gateway)
        assert pushed[("borgwatch_drill_status", frozenset({("status", "success")}))] == 1
        assert pushed[("borgwatch_drill_files", frozenset({("result", "verified")}))] == 61
        assert pushed[("borgwatch_archive_files", frozenset())] == 61  # the run's series stay in the group
        assert pushed[("borgwatch_run_status", frozenset({("status", "success")}))] == 1

        # repository damage: a mismatch event naming the file, the drill check's fail URL, never the backup's
        damage_largest_file(ws)
        del pings.requests[:]
        seen = len(loki.lines())
        proc = ws.borgwatch("drill", "home", "-c", str(ws.config))
        assert proc.returncode == 2, proc.stderr
        assert [r.path for r in pings.requests] == ["/drill-start", "/drill-fail"]
        assert json.loads(pings.requests[-1].body)["status"] == "failed"
        new = sorted(loki.lines()[seen:], key=lambda line: line["time"])
        mismatches = [line for line in new if line["event"] == "drill_mismatch"]
        assert mismatches and all(line["level"] == "error" for line in mismatches)
        assert any(line["path"] == str(ws.src / "big.bin") and line["msg"].startswith(line["path"] + ": ")
                   for line in mismatches), mismatches
        assert [line for line in new if line["event"] == "drill_summary"][0]["status"] == "failed"
        assert not [line for line in new if line["event"] == "run_summary"]
        pushed = gateway_series(gateway)
        assert pushed[("borgwatch_drill_status", frozenset({("status", "failed")}))] == 1
        assert pushed[("borgwatch_run_status", frozenset({("status", "success")}))] == 1
        for req in [*loki.requests, *pings.requests]:
            assert PASSPHRASE.encode() not in req.body
    assert ws.value("borgwatch_run_status", status="success") == 1
    assert ws.value("borgwatch_drill_status", status="failed") == 1


def test_a_drill_with_loki_down_still_records_its_metrics_and_state(workspace: Workspace) -> None:
    ws = workspace
    with LokiReceiver() as loki, receiver() as pings:
        configure(ws, loki.url, None, pings.url, loki_extra="retries = 0\nconnect_timeout = 1.0\n")
        ws.run(check=True)
        assert ws.value("borgwatch_sink_failures_total", sink="loki") == 0
        loki.refuse()
        proc = ws.borgwatch("drill", "home", "-c", str(ws.config))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert ws.value("borgwatch_drill_status", status="success") == 1
    assert ws.value("borgwatch_drill_files", result="verified") == 60
    assert ws.value("borgwatch_sink_failures_total", sink="loki") >= 1
    assert ws.value("borgwatch_run_status", status="success") == 1  # the backup's series are untouched
    assert ws.value("borgwatch_runs_total", status="success") == 1
    state = json.loads((ws.state_dir / "home.json").read_text())
    assert state["sink_failures_total"]["loki"] >= 1 and state["runs_total"] == {"success": 1}
    assert json.loads((ws.state_dir / "home.drill.json").read_text())["status"] == "success"
    spool = Path(ws.state_dir / "spool" / "loki-home.jsonl").read_text()
    assert "drill_summary" in spool  # delivered with the next run or drill
