"""AWS webhooks after the configuration names secrets by reference (``SecretRef``): the URL
still comes from Secrets Manager by ARN (the region from the ARN), against moto, and is
posted to a local receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from components.runtime.aws.alerts import aws_channels
from components.runtime.aws.clients import Clients
from components.runtime.config import SecretRef, Webhook
from components.runtime.notify import Alert

pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[Any]]]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    got: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = b'{"errcode": 0, "errmsg": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_url_is_read_from_the_secret_arn(receiver: tuple[str, list[Any]]) -> None:
    url, got = receiver
    arn = boto3.client("secretsmanager", region_name="us-west-2").create_secret(
        Name="shop-webhook-0", SecretString=url)["ARN"]
    channels = aws_channels(Clients(), None, [Webhook("wecom", SecretRef(arn))])
    ok, detail = channels["wecom-0"](Alert("switched", "data to us-west-2"))
    assert ok, detail
    assert got == [{"msgtype": "markdown",
                    "markdown": {"content": "**switched**\n\ndata to us-west-2"}}]
