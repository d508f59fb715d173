"""Driver errors -> the wrapper's error codes (``data_errors.CODES``), by SQLSTATE class on
PostgreSQL and by error number on MySQL/MariaDB.

Only real unavailability is retryable (``Unavailable``): the connection refused, reset or
lost, the server shutting down or out of connections. A write refused because the server is
read-only (a replica, or an old primary fenced after a switchover) is ``NotPrimary``, also
retryable: the pointer moves to the promoted side. Deadlocks and serialization failures are
``Aborted`` (rolled back, retryable). A cancelled statement (its statement timeout) is
``Timeout`` and a privilege error is ``PermissionDenied``: resending gets the same answer.
"""

from __future__ import annotations

from typing import Any

from components.runtime.data_errors import DataError

# PostgreSQL: exact SQLSTATEs first, then the two-character class
# (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_STATES = {
    "25006": "NotPrimary",        # read_only_sql_transaction
    "57014": "Timeout",           # query_canceled (statement_timeout)
    "55P03": "Timeout",           # lock_not_available (lock_timeout)
    "57P01": "Unavailable",       # admin_shutdown
    "57P02": "Unavailable",       # crash_shutdown
    "57P03": "Unavailable",       # cannot_connect_now
    "57P05": "Unavailable",       # idle_session_timeout
    "53300": "Unavailable",       # too_many_connections
    "42501": "PermissionDenied",  # insufficient_privilege
    "40001": "Aborted",           # serialization_failure
    "40P01": "Aborted",           # deadlock_detected
    "55006": "Conflict",          # object_in_use
}
_PG_CLASSES = {
    "08": "Unavailable",       # connection exception
    "22": "BadRequest",        # data exception
    "23": "Conflict",          # integrity constraint violation
    "21": "BadRequest",        # cardinality violation
    "0A": "BadRequest",        # feature not supported
    "2B": "Conflict",          # dependent privilege descriptors still exist
    "3F": "BadRequest",        # invalid schema name
    "40": "Aborted",           # transaction rollback
    "42": "BadRequest",        # syntax error or access rule violation
    "44": "Conflict",          # WITH CHECK OPTION violation
    "54": "BadRequest",        # program limit exceeded (statement too complex)
    "P0": "BadRequest",        # a trigger's RAISE
    "38": "BadRequest",        # external routine exception
    "39": "BadRequest",        # external routine invocation exception
    "72": "Aborted",           # snapshot too old
}

# MySQL/MariaDB error numbers (server 1000-1999 and 3000+, client 2000-2999).
_MY_CODES = {
    1290: "NotPrimary", 1836: "NotPrimary",                   # --read-only / replica
    1969: "Timeout", 3024: "Timeout", 1317: "Timeout",        # max_statement_time, interrupted
    1205: "Timeout",                                          # lock wait timeout
    1213: "Aborted", 1412: "Aborted",                         # deadlock, table definition
    1053: "Unavailable", 1927: "Unavailable", 1040: "Unavailable", 1203: "Unavailable",
    1044: "PermissionDenied", 1045: "PermissionDenied", 1142: "PermissionDenied",
    1143: "PermissionDenied", 1227: "PermissionDenied", 1370: "PermissionDenied",
    1062: "Conflict", 1451: "Conflict", 1452: "Conflict", 1048: "Conflict", 1216: "Conflict",
    1217: "Conflict", 1364: "Conflict", 3819: "Conflict", 4025: "Conflict", 1557: "Conflict",
    1586: "Conflict", 1022: "Conflict",
}
_MY_CLIENT_GONE = {2002, 2003, 2006, 2013, 2055}
_MY_BAD_RANGE = range(1046, 1400)  # parse, unknown table/column, data out of range, ...


def _pg_code(state: str) -> str:
    return _PG_STATES.get(state) or _PG_CLASSES.get(state[:2]) or "Internal"


def _my_code(errno: int) -> str:
    if errno in _MY_CODES:
        return _MY_CODES[errno]
    if errno in _MY_CLIENT_GONE:
        return "Unavailable"
    if 2000 <= errno < 3000:
        return "Internal"  # a client-side error that is not a lost connection: a bug
    if errno in _MY_BAD_RANGE or 1400 <= errno < 2000 or 3000 <= errno < 5000:
        return "BadRequest"
    return "Internal"


_MESSAGES = {
    "NotPrimary": "{where} is read-only (a replica or a fenced old primary): retry; the "
                  "pointer moves to the promoted side",
    "Timeout": "{where} cancelled the statement at its statement timeout ({first}); it was "
               "rolled back: make it cheaper (an index, a narrower WHERE) rather than resend",
    "Unavailable": "{where} unavailable: {first}",
    "PermissionDenied": "{where} refused the app role ({first}): grant the privilege the "
                        "statement needs, or change the statement",
    "Conflict": "constraint violated: {first}",
    "Aborted": "{where} rolled the statement back ({first}): resend",
    "BadRequest": "statement rejected by {engine}: {first}",
    "Internal": "{name} from {where}: {first}",
}


def classify(exc: BaseException, engine: str, host: str, port: int) -> DataError:
    """Map a driver exception to a wrapper error code."""
    where = f"{engine} at {host}:{port}"
    name = type(exc).__name__
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else name
    state: Any = getattr(exc, "sqlstate", None)
    errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    # PyMySQL errors carry an SQLSTATE too (a coarse one): the error number decides.
    if errno is not None:
        code = _my_code(errno)
    elif isinstance(state, str) and len(state) == 5:
        code = _pg_code(state)
    elif name in ("OperationalError", "InterfaceError", "ConnectionTimeout"):
        code = "Unavailable"  # a driver error without a server code: the connection failed
    elif name in ("DataError", "ProgrammingError", "UnicodeEncodeError"):
        code = "BadRequest"   # refused client-side (a NUL in text, a value it cannot send)
    else:
        code = "Internal"
    return DataError(code, _MESSAGES[code].format(where=where, first=first, engine=engine,
                                                  name=name))
