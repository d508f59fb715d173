"""A pointer value cached for a TTL: the wrapper's ``data`` pointer, the data client's
``wrapper`` pointer. A failed refresh keeps the last known value and waits one TTL before
trying again, so an unreachable pointer table costs one read per TTL, not one per request.

A caller that must not act on an old value passes ``max_age``: the value is served only if
it was read successfully within that many seconds (else the pointer is read now, and if that
fails too, ``PointerUnavailable``). The wrapper refuses writes this way once its pointer is
older than one TTL (fail closed) and serves reads from a bounded staleness."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PointerUnavailable(LookupError):
    """The pointer could not be read and no (fresh enough) value is cached."""


class PointerCache(Generic[T]):
    def __init__(self, read: Callable[[bool], T], ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``read(consistent)`` returns the current value or raises."""
        self._read, self.ttl_s, self._clock = read, ttl_s, clock
        self._value: T | None = None
        self._at = -1e18     # last read attempt that counts for the TTL (success or failure)
        self._ok_at = -1e18  # last successful read
        self._lock = threading.Lock()

    def age(self) -> float:
        """Seconds since the value was last read successfully."""
        with self._lock:
            return self._clock() - self._ok_at

    def get(self, fresh: bool = False, max_age: float | None = None) -> T:
        """The cached value, re-read after ``ttl_s``; ``fresh`` always reads (and fails
        rather than answer from the cache); ``max_age`` bounds how old a served value may be."""
        with self._lock:
            now = self._clock()
            young = max_age is None or now - self._ok_at <= max_age
            if not fresh and self._value is not None and now - self._at < self.ttl_s and young:
                return self._value
        try:
            value = self._read(fresh)
        except Exception as exc:
            with self._lock:
                now = self._clock()
                if self._value is not None and not fresh:
                    self._at = now  # back off one TTL before the next read
                    if max_age is None or now - self._ok_at <= max_age:
                        return self._value
                    stale = f"; last read {now - self._ok_at:.0f}s ago, allowed {max_age:g}s"
                else:
                    stale = ""
            raise PointerUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}{stale}") from None
        with self._lock:
            self._value = value
            self._at = self._ok_at = self._clock()
        return value

    def invalidate(self) -> None:
        with self._lock:
            self._at = -1e18
