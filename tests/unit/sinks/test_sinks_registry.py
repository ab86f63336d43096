"""The sink contract: a registry that only names, run order from phase, the runner's Redactor shared."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from helpers.loki import finish_result, make_config, make_result

import borgwatch.sinks as sinks
from borgwatch.config.agent import PingConfig, PushgatewayConfig
from borgwatch.model import RunEvent
from borgwatch.redact import Redactor
from borgwatch.sinks.base import Phase
from borgwatch.sinks.delivery import DeliveryError, bounded_call
from borgwatch.sinks.loki import LokiSink


def test_every_registered_sink_is_found_by_its_name_and_declares_its_contract() -> None:
    record = set()
    for name in sinks.REGISTRY:
        cls = sinks.load(name)
        assert cls.name == name
        assert isinstance(cls.phase, Phase) and isinstance(cls.fatal, bool)
        if cls.phase is Phase.RECORD:
            record.add(name)
        assert cls.fatal == (cls.phase is Phase.RECORD)  # a run that cannot be recorded cannot be seen
    assert record == {"textfile", "state"}
    assert sinks.load(sinks.REGISTRY["ping"]) is sinks.load("ping")  # "module:Class" specs still load


def test_run_order_comes_from_phase_not_from_the_registry(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp_path, "http://127.0.0.1:9/", job_kw={"ping": PingConfig(start="http://127.0.0.1:9/")})
    config.pushgateway = PushgatewayConfig(url="http://127.0.0.1:9/")
    expected = ["state", "textfile", "loki", "ping", "pushgateway"]
    for order in (list(sinks.REGISTRY), list(reversed(sinks.REGISTRY))):
        monkeypatch.setattr(sinks, "REGISTRY", {name: sinks.REGISTRY[name] for name in order})
        enabled = sinks.enabled_sinks(config, "home")
        assert [s.name for s in enabled] == expected
    assert [s.name for s in sinks.in_phase(enabled, Phase.RECORD)] == ["state", "textfile"]
    assert [s.name for s in sinks.in_phase(enabled, Phase.DELIVERY)] == ["loki", "ping", "pushgateway"]


def test_only_configured_sinks_take_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LokiSink, "environ", {})  # not under systemd: no journal fallback either
    assert [s.name for s in sinks.enabled_sinks(make_config(tmp_path, None), "home")] == ["state", "textfile"]


def test_a_secret_the_runner_learns_after_the_sinks_exist_never_reaches_the_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hunter2-passphrase-7c1"
    out = tmp_path / "stderr"
    redact = Redactor()
    with open(out, "w") as stream:
        monkeypatch.setattr(LokiSink, "stream", stream)
        st = os.fstat(stream.fileno())
        monkeypatch.setattr(LokiSink, "environ", {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        (loki,) = sinks.in_phase(sinks.enabled_sinks(make_config(tmp_path, None), "home", redact), Phase.DELIVERY)
        redact.add(secret)  # as the runner does once build_env has read the passphrase
        result = make_result()
        loki.on_start(result)
        finish_result(result, extra_events=[RunEvent(time.time(), "error", "borg_message", f"said {secret}",
                                                     {"argv": ["borg", f"--pw={secret}"]})])
        loki.on_finish(result)
    text = out.read_text()
    assert secret not in text
    shipped = [json.loads(line[3:]) for line in text.splitlines()]
    assert {"msg": "said ***", "argv": ["borg", "--pw=***"]}.items() <= shipped[-2].items()


def test_bounded_call_gives_up_on_a_call_that_never_answers() -> None:
    release = threading.Event()
    try:
        with pytest.raises(DeliveryError, match="push to gw: no answer within 0.2 s"):
            bounded_call(release.wait, 0.2, "push to gw")
    finally:
        release.set()


def test_bounded_call_error_names_no_credentials() -> None:
    def fail() -> None:
        raise ValueError("cannot reach http://user:s3cret-pw@gw:9091/metrics")

    with pytest.raises(DeliveryError) as caught:
        bounded_call(fail, 5, "push")
    assert str(caught.value) == "push: ValueError: cannot reach http://user:***@gw:9091/metrics"


def test_metrics_reference_names_every_registered_sink() -> None:
    from borgwatch.metrics.reference import render_metrics_markdown

    text = render_metrics_markdown()
    listed = text.split("`sink` ∈ ", 1)[1].split(".", 1)[0]
    assert sorted(listed.split(", ")) == sorted(sinks.REGISTRY)
