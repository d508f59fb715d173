"""The wrapper's error codes (the stable ``code`` of every refused or failed request)."""

from __future__ import annotations

from typing import Any

#: Error codes of the wrapper's answers, with whether a caller may retry the same request.
#: Only real unavailability is retryable: a retry of anything else gets the same answer.
CODES: dict[str, bool] = {
    "BadRequest": False,          # malformed request or a field out of its allowed range
    "UnknownOperation": False,    # ``op`` is not one of OPS
    "PayloadTooLarge": False,     # request, a field or the answer over its size limit
    "ForbiddenStatement": False,  # SQL outside the allowed subset (see ``sql_gate``)
    "PermissionDenied": False,    # the database refused the app role (a missing GRANT)
    "Timeout": False,             # the statement ran past its statement timeout and was
                                  # cancelled (rolled back): make it cheaper, do not resend
    "NotFound": False,            # kv.get / object.get of a missing key
    "Conflict": False,            # a constraint violation, or an idempotency key reused for
                                  # a different request
    "Aborted": True,              # deadlock or serialization failure: rolled back, resend
    "NotPrimary": True,           # a write reached a side that is not (or no longer) primary
    "Unavailable": True,          # the active database, bucket or pointer cannot be reached
    "Internal": False,            # a bug or an unexpected answer: see the wrapper's log
}


class DataError(Exception):
    def __init__(self, code: str, message: str) -> None:
        assert code in CODES, code
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return CODES[self.code]

    def answer(self) -> dict[str, Any]:
        return {"ok": False, "error": {"code": self.code, "message": self.message,
                                       "retryable": self.retryable}}
