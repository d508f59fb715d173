"""Notifiers against a real local HTTP receiver: formats, retries, and a receiver that hangs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from components.runtime.notify import Alert, Notifier, post_webhook, webhook_body
from components.runtime.observe import Log


class Receiver:
    """Answers like each chat service; ``fail_first`` requests get HTTP 500; ``hang`` holds
    the connection without answering."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail_first = 0
        self.hang = threading.Event()
        self.release = threading.Event()
        outer = self

        class Req(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append({"path": self.path, **body})
                if outer.hang.is_set():
                    outer.release.wait(10)
                    return
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                answer = b"ok" if self.path == "/slack" else json.dumps(
                    {"errcode": 0, "errmsg": "ok"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Req)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.release.set()
    r.server.shutdown()
    r.server.server_close()


ALERT = Alert("[shop] data/data: switched to standby", "primary down at 2 vantage points",
              "critical", {"token": 7})


@pytest.mark.parametrize("kind", ["wecom", "dingtalk", "slack"])
def test_each_webhook_gets_its_documented_body(receiver: Receiver, kind: str) -> None:
    ok, detail = post_webhook(kind, receiver.url(f"/{kind}"), ALERT, 2.0)
    assert ok, detail
    [body] = receiver.bodies
    if kind == "wecom":
        assert body["msgtype"] == "markdown" and "switched to standby" in body["markdown"]["content"]  # noqa: E501
    elif kind == "dingtalk":
        assert body["msgtype"] == "markdown" and body["markdown"]["title"] == ALERT.title
        assert "token: 7" in body["markdown"]["text"]
    else:
        assert body["text"].startswith("*[shop]") and body["blocks"][0]["type"] == "section"


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="allowed: wecom, dingtalk, slack"):
        webhook_body("teams", ALERT)


def test_retries_with_backoff_then_delivers(receiver: Receiver) -> None:
    receiver.fail_first = 2
    sleeps: list[float] = []
    n = Notifier({"wecom": lambda a: post_webhook("wecom", receiver.url("/wecom"), a, 2.0)},
                 Log(stream=_Null()), attempts=3, backoff_s=0.1, sleep=sleeps.append)
    n.send(ALERT)
    [d] = n.drain(10)
    assert d.ok and d.attempts == 3 and sleeps == [0.1, 0.2]
    n.close()


def test_a_hanging_receiver_never_blocks_the_caller(receiver: Receiver) -> None:
    receiver.hang.set()
    n = Notifier({"slack": lambda a: post_webhook("slack", receiver.url("/slack"), a, 0.5)},
                 Log(stream=_Null()), attempts=2, backoff_s=0.05)
    t0 = time.monotonic()
    n.send(ALERT)  # queued: returns at once
    assert time.monotonic() - t0 < 0.2
    deliveries = n.drain(5)
    assert time.monotonic() - t0 < 3.0
    assert [d.ok for d in deliveries] == [False]
    assert "timed out" in deliveries[0].detail.lower()
    n.close()


def test_a_failing_channel_does_not_stop_the_others(receiver: Receiver) -> None:
    def broken(alert: Alert) -> tuple[bool, str]:
        raise RuntimeError("boom")

    n = Notifier({"broken": broken,
                  "dingtalk": lambda a: post_webhook("dingtalk", receiver.url("/d"), a, 2.0)},
                 Log(stream=_Null()), attempts=1)
    n.send(ALERT)
    by = {d.channel: d for d in n.drain(5)}
    assert by["dingtalk"].ok and not by["broken"].ok and "boom" in by["broken"].detail
    n.close()


class _Null:
    def write(self, s: str) -> int:
        return len(s)
