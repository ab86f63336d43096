"""Healthchecks-style pings against a loopback HTTP receiver: start / success / fail, run summary as
body, bounded timeouts (a hanging receiver), errors counted and never raised."""

from __future__ import annotations

import json
import logging
import time

import pytest
from helpers.servers import free_port, receiver

from borgwatch.config.agent import PingConfig
from borgwatch.config.schema import Config, JobConfig
from borgwatch.model import RunResult
from borgwatch.sinks.ping import PingSink, ping_failed


def make_config(base: str, timeout: float = 5.0, warnings: str = "warning", **urls: str | None) -> Config:
    ping = PingConfig(start=urls.get("start", f"{base}/uuid/start"),
                      success=urls.get("success", f"{base}/uuid"),
                      fail=urls.get("fail", f"{base}/uuid/fail"), timeout=timeout)
    return Config(jobs={"home": JobConfig(repository="/srv/r", ping=ping, warnings=warnings),
                        "bare": JobConfig(repository="/srv/r")})


def result(status: str = "running") -> RunResult:
    r = RunResult(job="home", run_id="abc123", host="h1", started_at=time.time() - 5)
    if status != "running":
        r.in_progress, r.status, r.ended_at = False, status, time.time()
        r.exit_code = {"success": 0, "warning": 1, "error": 2, "interrupted": 143}[status]
    return r


def test_start_then_success_with_summary_body() -> None:
    with receiver() as rx:
        sink = PingSink(make_config(rx.url), "home")
        r = result()
        sink.on_start(r)
        r.in_progress, r.status, r.ended_at = False, "success", time.time()
        report = sink.on_finish(r)
    assert [(q.method, q.path) for q in rx.requests] == [("GET", "/uuid/start"), ("POST", "/uuid")]
    body = json.loads(rx.requests[1].body)
    assert body["status"] == "success" and body["job"] == "home" and body["run_id"] == "abc123"
    assert "events" not in body
    assert rx.requests[1].headers["Content-Type"] == "application/json"
    assert report is not None and (report.sink, report.failures, report.delivered) == ("ping", 0, 2)


@pytest.mark.parametrize(("status", "policy", "path"), [
    ("error", "warning", "/uuid/fail"), ("interrupted", "warning", "/uuid/fail"),
    ("warning", "warning", "/uuid"), ("warning", "error", "/uuid/fail"), ("success", "error", "/uuid"),
])
def test_finish_pings_the_right_url(status: str, policy: str, path: str) -> None:
    with receiver() as rx:
        PingSink(make_config(rx.url, warnings=policy), "home").on_finish(result(status))
    assert [q.path for q in rx.requests] == [path]
    assert json.loads(rx.requests[0].body)["status"] == status


def test_missing_urls_are_skipped_and_enabled_needs_one() -> None:
    with receiver() as rx:
        config = make_config(rx.url, start=None, fail=None)
        sink = PingSink(config, "home")
        sink.on_start(result())
        report = sink.on_finish(result("error"))
    assert rx.requests == [] and report is not None and report.delivered == 0
    assert PingSink.enabled(config, "home")
    assert not PingSink.enabled(config, "bare")
    config.jobs["home"].ping = PingConfig()
    assert not PingSink.enabled(config, "home")


def test_http_error_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    with receiver() as rx:
        rx.mode = "error"
        sink = PingSink(make_config(rx.url), "home")
        with caplog.at_level(logging.WARNING):
            sink.on_start(result())
            report = sink.on_finish(result("success"))
    assert report is not None and (report.failures, report.delivered) == (2, 0)
    assert "HTTP 500" in caplog.text and "Traceback" not in caplog.text


def test_hanging_receiver_is_bounded_by_timeout() -> None:
    with receiver() as rx:
        rx.mode = "hang"
        sink = PingSink(make_config(rx.url, timeout=0.5), "home")
        t0 = time.monotonic()
        sink.on_start(result())
        report = sink.on_finish(result("error"))
        elapsed = time.monotonic() - t0
    assert len(rx.requests) == 2  # both were received, neither answered
    assert report is not None and (report.failures, report.delivered) == (2, 0)
    assert 0.9 <= elapsed < 2.0, elapsed


def test_unreachable_and_bad_urls_never_raise(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    config = make_config("", start=f"http://127.0.0.1:{port}/x", success="not a url",
                         fail="http://user:hunter2@127.0.0.1:1/fail?token=sekret")
    sink = PingSink(config, "home")
    with caplog.at_level(logging.WARNING):
        sink.on_start(result())
        sink.on_finish(result("success"))
        report = sink.on_finish(result("error"))
    assert report is not None and report.failures == 3
    assert "hunter2" not in caplog.text and "sekret" not in caplog.text


def test_ping_failed_policy() -> None:
    assert ping_failed(result("error")) and not ping_failed(result("warning"))
    assert ping_failed(result("warning"), "error") and not ping_failed(result("success"), "error")
