"""The Loki sink against a strict fake Loki on loopback: content, labels, delivery, spool, secrets."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.loki import finish_result, make_config, make_result, run_once
from helpers.loki_receiver import LokiReceiver

from borgwatch.metrics.specs import job_samples
from borgwatch.model import RunEvent
from borgwatch.sinks.loki import LokiSink
from borgwatch.sinks.loki_logging import LokiBatchHandler
from borgwatch.sinks.loki_transport import Budget, Shipper, to_ns

BUILTIN = {"app", "host", "backup_job", "level"}


@pytest.fixture
def loki() -> Iterator[LokiReceiver]:
    receiver = LokiReceiver()
    yield receiver
    receiver.stop()


def events(loki: LokiReceiver) -> list[str]:
    return [line["event"] for line in loki.lines()]


def spool_file(tmp_path: Path, job: str = "home") -> Path:
    return tmp_path / "state" / "spool" / f"loki-{job}.jsonl"


# -- a normal run ------------------------------------------------------------------------------------

def test_normal_run_ships_start_stage_warning_summary(tmp_path: Path, loki: LokiReceiver) -> None:
    config = make_config(tmp_path, loki.url, labels={"env": "prod"})
    result, report, _ = run_once(config)

    assert events(loki) == ["run_started", "stage_started", "borg_message", "stage_finished", "run_summary"]
    assert report is not None
    assert (report.sink, report.delivered, report.failures, report.spooled, report.dropped) == \
        ("loki", 5, 0, 0, 0)
    # labels: exact set, strings only, bounded values; run ids etc. only in the line
    for labels, _, _ in loki.entries:
        assert set(labels) == BUILTIN | {"env"}
        assert all(isinstance(v, str) for v in labels.values())
        assert labels["app"] == "borgwatch" and labels["host"] == "nas1" and labels["backup_job"] == "home"
        assert labels["env"] == "prod"
    assert {labels["level"] for labels, _, _ in loki.entries} == {"info", "warning"}
    # event time, not send time, as ns strings
    shipped = [e for e in result.events if e.level != "debug" and e.event != "file_status"]
    assert [ts for _, ts, _ in loki.entries][:4] == [str(to_ns(e.time)) for e in shipped]
    assert loki.entries[-1][1] == str(to_ns(result.ended_at or 0))
    # the lines carry the ids
    start, _, warning, _, summary = loki.lines()
    assert start["run_id"] == result.run_id and start["archive"] == result.archive_name
    assert start["borg_version"] == "1.4.0" and start["repository"] == result.repository
    assert warning["msgid"] == "BackupPermissionError" and warning["path"] == "/home/x"
    assert warning["level"] == "warning" and loki.entries[2][0]["level"] == "warning"
    assert summary["status"] == "warning" and summary["exit_code"] == 1
    # one gzip'd push per hook, not one per record
    pushes = loki.pushes()
    assert len(pushes) == 2 and all(p.status == 204 for p in pushes)
    assert all(p.headers["Content-Encoding"] == "gzip" for p in pushes)
    assert gzip.decompress(pushes[1].raw) == pushes[1].body
    assert not spool_file(tmp_path).exists()


def test_gzip_off_and_full_push_url(tmp_path: Path, loki: LokiReceiver) -> None:
    config = make_config(tmp_path, loki.url + "/loki/api/v1/push", gzip=False)
    run_once(config)
    assert all("Content-Encoding" not in p.headers for p in loki.pushes())
    assert all(json.loads(p.raw)["streams"] for p in loki.pushes())
    assert len(loki.entries) == 5


def test_summary_numbers_equal_the_textfile_metrics(tmp_path: Path, loki: LokiReceiver) -> None:
    result, _, _ = run_once(make_config(tmp_path, loki.url))
    summary = loki.lines()[-1]
    assert summary["event"] == "run_summary"
    by_metric = {
        "borgwatch_run_duration_seconds": "duration_seconds", "borgwatch_run_exit_code": "exit_code",
        "borgwatch_archive_original_bytes": "archive_original_bytes",
        "borgwatch_archive_compressed_bytes": "archive_compressed_bytes",
        "borgwatch_archive_deduplicated_bytes": "archive_deduplicated_bytes",
        "borgwatch_archive_files": "archive_files",
        "borgwatch_archive_duration_seconds": "archive_duration_seconds",
        "borgwatch_borg_max_rss_bytes": "max_rss_bytes",
        "borgwatch_repository_unique_bytes": "repository_unique_bytes",
        "borgwatch_repository_total_bytes": "repository_total_bytes",
        "borgwatch_repository_chunks": "repository_unique_chunks",
    }
    by_label = {
        ("borgwatch_dataset_files", "change"): "dataset_{}",
        ("borgwatch_borg_cpu_seconds", "mode"): "cpu_{}_seconds",
        ("borgwatch_borg_io_bytes", "direction"): "{}_bytes",
        ("borgwatch_log_messages", "level"): "{}s",
        ("borgwatch_prune_archives", "action"): "prune_{}",
        ("borgwatch_stage_exit_code", "stage"): "stage_{}_exit_code",
        ("borgwatch_stage_duration_seconds", "stage"): "stage_{}_duration_seconds",
    }
    compared = 0
    for name, labels, value in job_samples(result):
        key = by_metric.get(name)
        for (metric, label), pattern in by_label.items():
            if metric == name:
                key = pattern.format(labels[label])
        if name == "borgwatch_run_status":
            assert (value == 1) == (summary["status"] == labels["status"])
            compared += 1
        if key is None:
            continue
        assert summary[key] == pytest.approx(value, abs=1e-3), name
        compared += 1
    assert compared >= 30
    assert summary["dataset_exact"] is True and summary["run_id"] == result.run_id


# -- opt-ins and levels ----------------------------------------------------------------------------

def test_file_lines_only_when_opted_in_and_min_level(tmp_path: Path, loki: LokiReceiver) -> None:
    run_once(make_config(tmp_path, loki.url, job_kw={"log_files": True}, min_level="debug"))
    assert events(loki).count("file_status") == 1
    assert {labels["level"] for labels, _, _ in loki.entries} == {"debug", "info", "warning"}

    with LokiReceiver() as other:
        run_once(make_config(tmp_path / "b", other.url, min_level="warning"))
        # below warning nothing but the summary, which is always shipped
        assert events(other) == ["borg_message", "stage_finished", "run_summary"]


# -- headers and secrets ---------------------------------------------------------------------------

def test_tenant_basic_auth_and_bearer_headers(tmp_path: Path, loki: LokiReceiver) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cr3t-pass\n")
    run_once(make_config(tmp_path, loki.url, tenant="team-a", username="12345", password_file=str(pw)))
    expected = "Basic " + base64.b64encode(b"12345:s3cr3t-pass").decode()
    assert {p.headers["Authorization"] for p in loki.pushes()} == {expected}
    assert {p.headers["X-Scope-OrgID"] for p in loki.pushes()} == {"team-a"}

    with LokiReceiver() as other:
        run_once(make_config(tmp_path / "b", other.url, token_command="printf tok-abc-123"))
        assert {p.headers["Authorization"] for p in other.pushes()} == {"Bearer tok-abc-123"}
        assert all("X-Scope-OrgID" not in p.headers for p in other.pushes())


def test_secret_command_failure_spools_instead_of_sending(tmp_path: Path, loki: LokiReceiver,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    _, report, _ = run_once(make_config(tmp_path, loki.url, token_command="false"))
    assert loki.requests == []
    assert report is not None and report.spooled == 5 and report.dropped == 0
    assert "could not read the Loki password/token" in caplog.text


def test_secrets_never_in_any_shipped_byte(tmp_path: Path, loki: LokiReceiver) -> None:
    token, password, url_pw, passphrase = "tok-9f8e7d6c5b", "pw-0a1b2c3d", "urlpw-77aa", "correct horse 42"
    (tmp_path / "token").write_text(token)
    (tmp_path / "pp").write_text(passphrase + "\n")
    repo = f"ssh://backup:{url_pw}@nas.example/./home"
    leaky = [RunEvent(time.time() - 5, "error", "borg_message",
                      f"Remote: {repo} refused; passphrase was {passphrase}; token {token} pw {password}",
                      {"msgid": "Repository.DoesNotExist", "path": repo, "borg_level": "ERROR",
                       "env": {"BORG_PASSPHRASE": passphrase}, "argv": ["borg", f"--x={password}"]})]
    config = make_config(tmp_path, loki.url, token_file=str(tmp_path / "token"), retries=0,
                         job_kw={"passphrase_file": str(tmp_path / "pp"),
                                 "environment": {"LOKI_PW": password}})
    result, _, _ = run_once(config, extra_events=leaky)
    result2, _, _ = run_once(config, run=1, warn_msg=f"note {repo} {passphrase}")  # again, for the summary
    assert len(loki.entries) == 11

    for req in loki.requests:
        body = gzip.decompress(req.raw)
        for secret in (token, password, url_pw, passphrase):
            assert secret.encode() not in body
            assert secret.encode() not in req.raw
    assert all(req.headers["Authorization"] == f"Bearer {token}" for req in loki.requests)
    assert "ssh://backup:***@nas.example" in json.dumps(loki.lines())
    # the spool is a shipped artefact too
    loki.refuse()
    run_once(config, run=2, extra_events=leaky)
    spooled = spool_file(tmp_path).read_bytes()
    assert spooled and all(s.encode() not in spooled for s in (token, password, url_pw, passphrase))


# -- Loki failures -----------------------------------------------------------------------------------

def test_400_is_not_retried_lines_dropped_and_warned_once(tmp_path: Path, loki: LokiReceiver,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    loki.fail_next(400, 1)
    _, report, _ = run_once(make_config(tmp_path, loki.url))
    assert report is not None
    assert report.dropped == 1 and report.failures == 1 and report.spooled == 0 and report.delivered == 4
    bodies = [p.raw for p in loki.pushes()]
    assert len(bodies) == len(set(bodies)) == 2  # the rejected body was never sent again
    assert events(loki) == ["stage_started", "borg_message", "stage_finished", "run_summary"]
    assert caplog.text.count("Loki rejected") == 1


def test_400_for_one_bad_line_keeps_the_others(tmp_path: Path, loki: LokiReceiver,
                                               caplog: pytest.LogCaptureFixture) -> None:
    ancient = RunEvent(time.time() - 200 * 3600, "warning", "borg_message", "clock was wrong", {})
    _, report, _ = run_once(make_config(tmp_path, loki.url), extra_events=[ancient])
    assert report is not None and report.dropped == 1 and report.spooled == 0
    assert "clock was wrong" not in json.dumps(loki.lines())
    assert events(loki) == ["run_started", "stage_started", "borg_message", "stage_finished", "run_summary"]
    assert caplog.text.count("Loki rejected") == 1 and "too old" in caplog.text


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retryable_status_is_retried_with_backoff(tmp_path: Path, loki: LokiReceiver, status: int) -> None:
    loki.fail_next(status, 2)
    _, report, spent = run_once(make_config(tmp_path, loki.url))
    assert report is not None and report.failures == 2 and report.delivered == 5 and report.spooled == 0
    assert 0.75 <= spent < 2.0  # 0.25 s + 0.5 s backoff
    assert len(loki.pushes()) == 4


def test_retries_exhausted_spool_then_next_run_sends_spool_first(tmp_path: Path, loki: LokiReceiver) -> None:
    config = make_config(tmp_path, loki.url, retries=2)
    loki.fail_next(503, 3)
    base = time.time() - 3600
    first, report, spent = run_once(config, run=0, t0=base)
    assert report is not None and report.failures == 3 and report.delivered == 0 and report.spooled == 5
    assert spent < 1.5  # 0.25 + 0.5 backoff, then no more pushes this run
    assert len(spool_file(tmp_path).read_text().splitlines()) == 5

    second, report, _ = run_once(config, run=1, t0=base + 100)
    assert report is not None and report.delivered == 10 and report.spooled == 0
    runs = [line["run_id"] for line in loki.lines()]
    assert runs == [first.run_id] * 5 + [second.run_id] * 5
    assert loki.arrival_in_order()
    assert not spool_file(tmp_path).exists()


def test_hung_loki_delays_the_run_by_at_most_the_timeout(tmp_path: Path, loki: LokiReceiver) -> None:
    loki.hang_seconds = 30
    config = make_config(tmp_path, loki.url, read_timeout=0.5, max_delay=2.0)
    _, report, spent = run_once(config)
    assert spent <= 0.5 + 0.4, spent  # one read timeout; later pushes skipped
    assert report is not None and report.spooled == 5 and report.failures == 1 and report.dropped == 0
    assert len(loki.requests) == 1


def test_hung_loki_at_default_config(tmp_path: Path, loki: LokiReceiver) -> None:
    """The closing figure: time a hung Loki adds to a run with the defaults (read_timeout 3 s)."""
    loki.hang_seconds = 30
    _, report, spent = run_once(make_config(tmp_path, loki.url))
    print(f"\nhung Loki, default config: {spent:.2f}s added to the run")
    assert 3.0 <= spent <= 3.5
    assert report is not None and report.spooled == 5


def test_max_delay_bounds_all_retries(tmp_path: Path, loki: LokiReceiver) -> None:
    loki.fail_next(500, 100)
    config = make_config(tmp_path, loki.url, retries=20, max_delay=1.0)
    _, report, spent = run_once(config)
    assert spent <= 1.0 + 0.2
    assert report is not None and report.spooled == 5


def test_outage_then_recovery_delivers_every_line_in_order(tmp_path: Path, loki: LokiReceiver) -> None:
    config = make_config(tmp_path, loki.url, retries=1)
    base = time.time() - 7200
    loki.refuse()
    outage = []
    for n in range(3):
        result, report, spent = run_once(config, run=n, t0=base + n * 60)
        outage.append(result)
        assert report is not None and report.spooled == 5 * (n + 1) and report.dropped == 0
        assert spent < 0.6  # refused: one retry after 0.25 s, then spooled
    loki.restore()
    last, report, _ = run_once(config, run=3, t0=base + 1000)
    assert report is not None and report.delivered == 20 and report.spooled == 0 and report.dropped == 0
    assert [line["run_id"] for line in loki.lines()] == \
        [r.run_id for r in outage for _ in range(5)] + [last.run_id] * 5
    assert loki.duplicates == 0 and loki.arrival_in_order()
    print(f"\nlines delivered after the outage: {report.delivered} (15 spooled + 5 new)")


def test_restart_between_start_and_finish_loses_nothing(tmp_path: Path, loki: LokiReceiver) -> None:
    config = make_config(tmp_path, loki.url, retries=0)
    loki.refuse()
    sink = LokiSink(config, "home")
    result = make_result()
    sink.on_start(result)  # run_started goes to the spool right away
    assert len(spool_file(tmp_path).read_text().splitlines()) == 1
    loki.restore()
    finish_result(result)
    report = sink.on_finish(result)  # disabled for this run after the outage at start
    assert report is not None and report.spooled == 5
    run_once(config, run=1, t0=result.started_at + 30)
    assert events(loki)[:5] == ["run_started", "stage_started", "borg_message", "stage_finished",
                                "run_summary"]
    assert len(loki.entries) == 10


def test_spool_bound_drops_oldest_with_count(tmp_path: Path, loki: LokiReceiver,
                                             caplog: pytest.LogCaptureFixture) -> None:
    loki.refuse()
    config = make_config(tmp_path, loki.url, spool_max_bytes=6000, retries=0)
    dropped = 0
    for n in range(6):
        _, report, _ = run_once(config, run=n, t0=time.time() - 1000 + n * 30)
        assert report is not None
        dropped += report.dropped
    size = spool_file(tmp_path).stat().st_size
    assert size <= 6000
    assert dropped > 0 and "dropped the" in caplog.text
    loki.restore()
    _, report, _ = run_once(config, run=6)
    assert report is not None
    assert report.delivered + dropped == 7 * 5  # every line is either delivered or counted as dropped
    assert loki.lines()[-1]["run_id"] == "run-home-0006"
    assert loki.lines()[0]["run_id"] != "run-home-0000"  # the oldest went first


def test_100_runs_stay_within_jobs_times_levels_streams(tmp_path: Path, loki: LokiReceiver) -> None:
    jobs = ("home", "etc")
    config = make_config(tmp_path, loki.url, jobs=jobs, labels={"env": "prod"})
    base = time.time() - 3000
    for n in range(100):
        run_once(config, job=jobs[n % 2], run=n, t0=base + n * 20)
    assert len(loki.entries) == 500
    levels = {labels["level"] for labels, _, _ in loki.entries}
    assert len(loki.streams()) <= len(jobs) * len(levels) <= len(jobs) * 4
    assert len({line["run_id"] for line in loki.lines()}) == 100


# -- the logging handler on its own ---------------------------------------------------------------

def test_batch_handler_attaches_to_a_logger(loki: LokiReceiver) -> None:
    shipper = Shipper(url=loki.url + "/loki/api/v1/push", budget=Budget(2.0))
    handler = LokiBatchHandler(shipper, {"app": "borgwatch", "host": "h", "backup_job": "j"})
    logger = logging.getLogger("test.loki.handler")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info("one")
        logger.error("two %s", 2)
        assert loki.requests == []  # buffered
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert len(loki.pushes()) == 1
    shipped = [(labels["level"], line) for labels, _, line in loki.entries]
    assert shipped == [("info", "one"), ("error", "two 2")]
    assert all(set(labels) == BUILTIN for labels, _, _ in loki.entries)


def test_refused_handler_never_prints_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from helpers.loki_receiver import free_port

    shipper = Shipper(url=f"http://127.0.0.1:{free_port()}/loki/api/v1/push", budget=Budget(1.0), retries=1)
    handler = LokiBatchHandler(shipper, {"app": "borgwatch"})
    handler.handle(logging.makeLogRecord({"msg": "x", "levelno": logging.INFO, "levelname": "INFO"}))
    handler.close()
    assert shipper.stats.failures == 2 and len(shipper.pending) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert "connection failed" in shipper.stats.unavailable_reason


# -- no Loki configured: the journal ---------------------------------------------------------------

def _journal_env(path: Path) -> dict[str, str]:
    st = os.stat(path)
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def test_journal_fallback_only_under_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp_path, None)
    out = tmp_path / "stderr"
    with open(out, "w") as stream:
        monkeypatch.setattr(LokiSink, "stream", stream)
        for environ in ({}, {"JOURNAL_STREAM": "1:2"}):  # terminal/cron, or stderr redirected elsewhere
            monkeypatch.setattr(LokiSink, "environ", environ)
            assert not LokiSink.enabled(config, "home")
            run_once(config)
        assert out.read_text() == ""

        monkeypatch.setattr(LokiSink, "environ", _journal_env(out))
        assert LokiSink.enabled(config, "home")
        result, report, _ = run_once(config)
    assert report is None
    lines = out.read_text().splitlines()
    assert [line[:3] for line in lines] == ["<6>", "<6>", "<4>", "<4>", "<4>"]
    decoded = [json.loads(line[3:]) for line in lines]
    assert [d["event"] for d in decoded] == ["run_started", "stage_started", "borg_message", "stage_finished",
                                             "run_summary"]
    assert decoded[-1]["archive_files"] == 4321 and decoded[0]["run_id"] == result.run_id
    assert not (tmp_path / "state" / "spool").exists()


def test_same_json_in_journal_and_loki(tmp_path: Path, loki: LokiReceiver,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "stderr"
    t0 = time.time() - 100
    with open(out, "w") as stream:
        monkeypatch.setattr(LokiSink, "stream", stream)
        monkeypatch.setattr(LokiSink, "environ", _journal_env(out))
        run_once(make_config(tmp_path, None), t0=t0)
    run_once(make_config(tmp_path, loki.url), t0=t0)
    assert [line[3:] for line in out.read_text().splitlines()] == [line for _, _, line in loki.entries]


def test_on_finish_never_raises(tmp_path: Path, loki: LokiReceiver) -> None:
    config = make_config(tmp_path, loki.url)
    (tmp_path / "state").write_text("not a directory")  # spool cannot be created
    sink = LokiSink(config, "home")
    result = finish_result(make_result())
    report = sink.on_finish(result)
    assert report is not None and report.delivered == 5
