"""A pointer value cached for a TTL: the wrapper's ``data`` pointer, the data client's
``wrapper`` pointer. A failed refresh keeps the last known value and waits one TTL before
trying again, so an unreachable pointer table costs one read per TTL, not one per request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PointerUnavailable(LookupError):
    """The pointer could not be read and no value was ever cached."""


class PointerCache(Generic[T]):
    def __init__(self, read: Callable[[bool], T], ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``read(consistent)`` returns the current value or raises."""
        self._read, self.ttl_s, self._clock = read, ttl_s, clock
        self._value: T | None = None
        self._at = -1e18
        self._lock = threading.Lock()

    def get(self, fresh: bool = False) -> T:
        """The cached value, re-read after ``ttl_s``; ``fresh`` always reads (and fails
        rather than answer from the cache)."""
        with self._lock:
            if not fresh and self._value is not None and self._clock() - self._at < self.ttl_s:
                return self._value
        try:
            value = self._read(fresh)
        except Exception as exc:
            with self._lock:
                if self._value is not None and not fresh:
                    self._at = self._clock()  # back off one TTL before the next read
                    return self._value
            raise PointerUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        with self._lock:
            self._value, self._at = value, self._clock()
        return value

    def invalidate(self) -> None:
        with self._lock:
            self._at = -1e18
