"""Run-time errors. Each message names what is wrong and what is allowed."""

from __future__ import annotations


class RuntimeFailure(Exception):
    """Base of every error the run-time code raises on purpose."""


class ConfigError(RuntimeFailure):
    """The function's environment (the deploy-time contract) is wrong; nothing was switched."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid monitor configuration:\n  - " + "\n  - ".join(problems))


class EventError(RuntimeFailure):
    """The invocation event is malformed; nothing was switched."""


class LeaseLost(RuntimeFailure):
    """The lease expired or was taken over before the switch committed."""


class StaleToken(RuntimeFailure):
    """A write carried a fencing token older than the one the target holds."""


class SwitchError(RuntimeFailure):
    """A switcher could not apply or verify a switch."""


class StoreError(RuntimeFailure):
    """The state store failed for a reason other than a condition (access denied, throttled,
    unreachable). Raised instead of the cloud SDK's own error so the core can alert on it."""


class ClockSkew(RuntimeFailure):
    """This machine's clock is too far from the state store's; nothing was switched."""
