"""Pushgateway sink against the real prometheus-pushgateway binary on loopback."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.servers import PUSHGATEWAY, free_port, pushgateway, receiver
from prometheus_client.parser import text_string_to_metric_families

from borgwatch.config.agent import PushgatewayConfig
from borgwatch.config.schema import Config, JobConfig
from borgwatch.model import ArchiveStats, RunResult, StageResult
from borgwatch.sinks.delivery import split_credentials
from borgwatch.sinks.pushgateway import PushgatewaySink

needs_gateway = pytest.mark.skipif(PUSHGATEWAY is None, reason="prometheus-pushgateway not installed")
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def make_config(url: str, timeout: float = 5.0, hostname: str | None = "host1") -> Config:
    return Config(hostname=hostname, pushgateway=PushgatewayConfig(url=url, timeout=timeout),
                  jobs={"home": JobConfig(repository="/srv/r"), "etc": JobConfig(repository="/srv/e"),
                        "quiet": JobConfig(repository="/srv/q", pushgateway=False)})


def started(job: str = "home", host: str = "host1") -> RunResult:
    return RunResult(job=job, run_id="r1", host=host, started_at=time.time() - 60, last_success_at=1000.0,
                     runs_total={"success": 3})


def finished(result: RunResult, status: str) -> RunResult:
    result.in_progress = False
    result.ended_at = time.time()
    result.status = status
    result.exit_code = 0 if status == "success" else 2
    result.stages = [StageResult("create", status, result.exit_code, result.started_at, 59.0)]
    if status == "success":
        result.archive = ArchiveStats(name="a1", original_bytes=12345, files=7)
        result.last_success_at = result.ended_at
    result.runs_total[status] = result.runs_total.get(status, 0) + 1
    return result


def scrape(url: str) -> Series:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("borgwatch_") or s.name == "push_time_seconds":
                out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(series: Series, name: str, **labels: str) -> float | None:
    key = {"job": "borgwatch", "instance": "host1", "backup_job": "home", **labels}
    return series.get((name, frozenset(key.items())))


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    with pushgateway(tmp_path) as url:
        yield url


@pytest.mark.slow
@needs_gateway
def test_start_and_success_are_pushed_with_grouping_key(gateway: str) -> None:
    sink = PushgatewaySink(make_config(gateway), "home")
    result = started()
    sink.on_start(result)
    series = scrape(gateway)
    assert value(series, "borgwatch_run_in_progress") == 1
    assert value(series, "push_time_seconds") is not None  # the group is job/instance/backup_job
    report = sink.on_finish(finished(result, "success"))
    assert report is not None and (report.sink, report.failures, report.delivered) == ("pushgateway", 0, 2)
    series = scrape(gateway)
    assert value(series, "borgwatch_run_in_progress") == 0
    assert value(series, "borgwatch_archive_original_bytes") == 12345
    assert value(series, "borgwatch_run_status", status="success") == 1
    # every series carries exactly the grouping key's backup_job, none an empty one
    assert {dict(labels).get("backup_job") for _, labels in series} == {"home"}


@pytest.mark.slow
@needs_gateway
def test_failed_run_keeps_last_success_series(gateway: str) -> None:
    config = make_config(gateway)
    good = finished(started(), "success")
    PushgatewaySink(config, "home").on_finish(good)
    bad = started()
    bad.last_success_at = good.last_success_at  # as the runner carries it from the state file
    sink = PushgatewaySink(config, "home")
    sink.on_start(bad)
    sink.on_finish(finished(bad, "error"))
    series = scrape(gateway)
    assert value(series, "borgwatch_run_status", status="error") == 1
    assert value(series, "borgwatch_run_status", status="success") == 0
    assert value(series, "borgwatch_last_success_timestamp_seconds") == pytest.approx(good.last_success_at)
    # add semantics: the failed run had no archive, the last good archive's series stay
    assert value(series, "borgwatch_archive_original_bytes") == 12345
    assert value(series, "borgwatch_runs_total", status="error") == 1


@pytest.mark.slow
@needs_gateway
def test_failed_first_run_does_not_erase_pushed_last_success(gateway: str) -> None:
    """Even a RunResult without last_success_at (state lost) leaves the gateway's value in place."""
    config = make_config(gateway)
    PushgatewaySink(config, "home").on_finish(finished(started(), "success"))
    before = value(scrape(gateway), "borgwatch_last_success_timestamp_seconds")
    lost = started()
    lost.last_success_at = None
    PushgatewaySink(config, "home").on_finish(finished(lost, "error"))
    assert value(scrape(gateway), "borgwatch_last_success_timestamp_seconds") == before


@pytest.mark.slow
@needs_gateway
def test_jobs_and_hosts_do_not_overwrite_each_other(gateway: str) -> None:
    PushgatewaySink(make_config(gateway), "home").on_finish(finished(started(), "success"))
    PushgatewaySink(make_config(gateway), "etc").on_finish(finished(started("etc"), "error"))
    PushgatewaySink(make_config(gateway, hostname="host2"), "home").on_finish(
        finished(started(host="host2"), "error"))
    series = scrape(gateway)
    assert value(series, "borgwatch_run_status", status="success") == 1
    assert value(series, "borgwatch_run_status", status="error", backup_job="etc") == 1
    assert value(series, "borgwatch_run_status", status="error", instance="host2") == 1


def test_enabled_follows_config() -> None:
    config = make_config("http://127.0.0.1:1")
    assert PushgatewaySink.enabled(config, "home")
    assert not PushgatewaySink.enabled(config, "quiet")
    config.pushgateway = None
    assert not PushgatewaySink.enabled(config, "home")


def test_gateway_down_is_counted_not_raised() -> None:
    sink = PushgatewaySink(make_config(f"http://127.0.0.1:{free_port()}", timeout=2), "home")
    t0 = time.monotonic()
    result = started()
    sink.on_start(result)
    report = sink.on_finish(finished(result, "success"))
    assert report is not None and (report.failures, report.delivered) == (2, 0)
    assert time.monotonic() - t0 < 3


def test_hanging_gateway_is_bounded_by_timeout() -> None:
    with receiver() as rx:
        rx.mode = "hang"
        sink = PushgatewaySink(make_config(rx.url, timeout=0.5), "home")
        t0 = time.monotonic()
        report = sink.on_finish(finished(started(), "success"))
        elapsed = time.monotonic() - t0
    assert report is not None and report.failures == 1
    assert elapsed < 1.5
    assert rx.requests and rx.requests[0].method == "POST"


def test_basic_auth_from_url_is_sent_and_not_in_the_path() -> None:
    with receiver() as rx:
        url = rx.url.replace("http://", "http://push%40er:s3cr%3At@")
        report = PushgatewaySink(make_config(url), "home").on_finish(finished(started(), "success"))
    assert report is not None and report.failures == 0
    (req,) = rx.requests
    assert req.method == "POST"
    assert req.path == "/metrics/job/borgwatch/backup_job/home/instance/host1"
    assert req.headers["Authorization"] == "Basic cHVzaEBlcjpzM2NyOnQ="  # base64("push@er:s3cr:t")
    assert b'borgwatch_run_status{backup_job="home",status="success"} 1.0' in req.body


def test_split_credentials() -> None:
    assert split_credentials("http://gw:9091") == ("http://gw:9091", None, None)
    assert split_credentials("gw:9091") == ("http://gw:9091", None, None)
    assert split_credentials("https://u:p@gw:9091/x") == ("https://gw:9091/x", "u", "p")
