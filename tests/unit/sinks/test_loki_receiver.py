"""The fake Loki must be as strict as Loki, or the sink tests prove nothing."""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import logging_loki
import pytest
import requests
from helpers.loki_receiver import LokiReceiver


@pytest.fixture
def loki() -> Iterator[LokiReceiver]:
    receiver = LokiReceiver()
    yield receiver
    receiver.stop()


def push(loki: LokiReceiver, payload: Any, gz: bool = False, ctype: str = "application/json",
         raw: bytes | None = None) -> requests.Response:
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": ctype}
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return requests.post(loki.url + "/loki/api/v1/push", data=body, headers=headers, timeout=5)


def now_ns(offset_s: float = 0) -> str:
    return str(time.time_ns() + int(offset_s * 1e9))


def stream(labels: Any, *values: Any) -> dict[str, Any]:
    return {"streams": [{"stream": labels, "values": list(values)}]}


def test_valid_push_plain_and_gzip(loki: LokiReceiver) -> None:
    assert push(loki, stream({"app": "a"}, [now_ns(), "x"])).status_code == 204
    assert push(loki, stream({"app": "a"}, [now_ns(), "y", {"trace": "1"}]), gz=True).status_code == 204
    assert [line for _, _, line in loki.entries] == ["x", "y"]


# built when the test runs: timestamps are relative to "now", and a long suite takes minutes
@pytest.mark.parametrize("make_payload", [
    lambda: {"streams": []},
    lambda: stream({}, [now_ns(), "x"]),
    lambda: stream({"app": 1}, [now_ns(), "x"]),  # numeric label value
    lambda: stream({"job-name": "a"}, [now_ns(), "x"]),
    lambda: stream({"__name__": "a"}, [now_ns(), "x"]),
    lambda: stream({f"l{i}": "v" for i in range(16)}, [now_ns(), "x"]),
    lambda: stream({"app": "a"}, [int(now_ns()), "x"]),  # numeric timestamp
    lambda: stream({"app": "a"}, [now_ns(-169 * 3600), "x"]),
    lambda: stream({"app": "a"}, [now_ns(+11 * 60), "x"]),
    lambda: stream({"app": "a"}, [now_ns(), "x" * (256 * 1024 + 1)]),
    lambda: stream({"app": "a"}, [now_ns(), "x", {"k": 1}]),
])
def test_violations_answer_400(loki: LokiReceiver, make_payload: Callable[[], Any]) -> None:
    resp = push(loki, make_payload())
    assert resp.status_code == 400 and resp.text
    assert loki.entries == []


def test_duplicate_label_names_bad_gzip_and_protobuf_rejected(loki: LokiReceiver) -> None:
    dup = b'{"streams":[{"stream":{"app":"a","app":"b"},"values":[["' + now_ns().encode() + b'","x"]]}]}'
    assert push(loki, None, raw=dup).status_code == 400
    bad = requests.post(loki.url + "/loki/api/v1/push", data=b"not gzip", timeout=5,
                        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert bad.status_code == 400
    proto = push(loki, stream({"app": "a"}, [now_ns(), "x"]), ctype="application/x-protobuf")
    assert proto.status_code == 400


def test_out_of_order_window_per_stream_and_dedup(loki: LokiReceiver) -> None:
    assert push(loki, stream({"app": "a"}, [now_ns(), "new"])).status_code == 204
    resp = push(loki, stream({"app": "a"}, [now_ns(-2 * 3600), "old"], [now_ns(), "fresh"]))
    assert resp.status_code == 400 and "too far behind" in resp.text
    assert [line for _, _, line in loki.entries] == ["new", "fresh"]  # valid entries kept, like Loki
    ts = loki.entries[0][1]
    assert push(loki, stream({"app": "a"}, [ts, "new"])).status_code == 204
    assert loki.duplicates == 1 and len(loki.entries) == 2


def test_failure_injection(loki: LokiReceiver) -> None:
    loki.fail_next(429)
    loki.fail_next(500)
    ok = stream({"app": "a"}, [now_ns(), "x"])
    assert [push(loki, ok).status_code for _ in range(3)] == [429, 500, 204]
    loki.hang_seconds = 5
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        requests.post(loki.url + "/loki/api/v1/push", json=ok, timeout=(1, 0.3))
    assert time.monotonic() - started < 1
    loki.hang_seconds = 0
    loki.refuse()
    with pytest.raises(requests.ConnectionError):
        push(loki, ok)
    loki.restore()
    assert push(loki, stream({"app": "a"}, [now_ns(), "y"])).status_code == 204


def test_plain_python_logging_loki_031_is_rejected(loki: LokiReceiver) -> None:
    """Why the library is wrapped: its numeric label values get 400; its default path is gone."""
    handler = logging_loki.LokiHandler(url=loki.url + "/loki/api/v1/push", tags={"app": "borgwatch"},
                                       version="1")
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    logger = logging.getLogger("test.loki.plain")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("exit", extra={"tags": {"exit_code": 2}})
        record = logging.makeLogRecord({"name": "t", "msg": "old", "levelno": 20, "levelname": "INFO",
                                         "created": 1e9})
        handler.handle(record)
    finally:
        logger.removeHandler(handler)
    statuses = [r.status for r in loki.requests]
    assert statuses == [400, 204]  # numeric label rejected; the 1e9 record was stamped with send time
    assert abs(int(loki.entries[0][1]) / 1e9 - time.time()) < 60
