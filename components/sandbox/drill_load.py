"""The drill's load: writers posting unique orders through the public name."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

from components.sandbox.drill_report import Sample


class LoadGen:
    """Writers posting unique orders through the public name (answers cached for the TTL)."""

    def __init__(self, resolve: Callable[[], str], ttl_s: float, threads: int = 2,
                 timeout_s: float = 3.0, pace_s: float = 0.0) -> None:
        """``pace_s``: each writer starts a request at most every ``pace_s`` seconds (0: as
        fast as answers come)."""
        self.resolve, self.ttl_s, self.timeout_s, self.pace_s = resolve, ttl_s, timeout_s, pace_s
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True,
                                          name=f"load-{i}") for i in range(threads)]

    def start(self) -> LoadGen:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout_s + 2)

    def acked(self, before: float | None = None) -> list[str]:
        with self._lock:
            return [s.order for s in self.samples if s.ok and (before is None or s.t <= before)]

    def _run(self, i: int) -> None:
        url, until = "", 0.0
        while not self._stop.is_set():
            now = time.time()
            started = time.monotonic()
            if now >= until:
                url, until = self.resolve(), now + self.ttl_s
            order = f"o-{uuid.uuid4().hex[:16]}"
            req = urllib.request.Request(url + "/orders", method="POST",
                                         data=json.dumps({"id": order, "item": "drill"}).encode(),
                                         headers={"Content-Type": "application/json"})
            sample = Sample(0.0, False, 0, order)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    sample.status, body = resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                sample.status, body = exc.code, exc.read()
            except (urllib.error.URLError, OSError):
                body = b""
            sample.t = time.time()
            sample.ok = sample.status == 201
            if not sample.ok:
                sample.detail = body[:200].decode("utf-8", "replace") or "no answer"
            with contextlib.suppress(ValueError, AttributeError):
                doc = json.loads(body or b"{}")
                sample.region = (doc.get("logic") or {}).get("region")
                sample.logic_side = (doc.get("logic") or {}).get("side")
                sample.wrapper_side = (doc.get("data") or {}).get("wrapper_side")
                sample.data_region = (doc.get("data") or {}).get("data_region")
            with self._lock:
                self.samples.append(sample)
            if not sample.ok:
                self._stop.wait(0.05)  # a failing endpoint is not hammered
            self._stop.wait(max(0.0, self.pace_s - (time.monotonic() - started)))
