"""The SQL gate: which statements the wrapper runs, decided by an allow-list over a parse tree.

A statement is accepted only if all of these hold:

* it is one ``SELECT`` (or ``UNION``/``INTERSECT``/``EXCEPT`` of them), ``INSERT``, ``UPDATE``
  or ``DELETE``; ``WITH ... SELECT`` is allowed when every ``WITH`` part is a read
  (a data-modifying ``WITH`` is refused);
* it has no string literals, quoted identifiers, comments, ``;`` (a trailing one is
  allowed), ``$``, backslashes, ``@`` (session or user variables), NUL or other control
  characters: every value must be a ``:name`` parameter, so text built from user input has
  nowhere to hide, and the text the server receives is the text that was checked;
* no ``SELECT ... INTO`` (creates a table or writes a file or variable), no locking clause
  (``FOR UPDATE``/``FOR SHARE``/``LOCK IN SHARE MODE``: each request is its own transaction,
  so a row lock protects nothing, and on a read it would write);
* every function it calls is on ``ALLOWED_FUNCTIONS`` (side-effect free and bounded in the
  size of its answer) and not schema-qualified: ``pg_sleep``, ``set_config``,
  ``pg_advisory_lock``, ``lo_from_bytea``, ``pg_terminate_backend``, ``nextval``,
  ``load_file``, ``sleep``, ``repeat``, ``generate_series`` ... are refused.

Refusals are ``ForbiddenStatement`` naming what was refused; every ``:name`` must have a
parameter and every parameter must be used (``BadRequest``). The parser is sqlglot in the
server's dialect (``postgres`` or ``mysql``, which also covers MariaDB).
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from components.runtime.data_errors import DataError

MAX_SQL_CHARS = 16 * 1024
MAX_PARAMS = 100
MAX_PARAM_CHARS = 64 * 1024
DIALECTS = {"postgres": "postgres", "mysql": "mysql"}

#: Functions a statement may call, by the name sqlglot gives them (``now()`` is
#: ``CURRENT_TIMESTAMP`` in PostgreSQL, ``strpos`` is ``STR_POSITION`` ...). Each is free of
#: side effects and its answer is at most a small multiple of its arguments' size (so no
#: ``repeat``/``lpad``/``generate_series``).
ALLOWED_FUNCTIONS = frozenset({
    # aggregates and window functions
    "COUNT", "SUM", "MIN", "MAX", "AVG", "ARRAY_AGG", "GROUP_CONCAT", "LOGICAL_AND",
    "LOGICAL_OR", "EVERY", "STDDEV", "STDDEV_POP", "STDDEV_SAMP", "VARIANCE", "VARIANCE_POP",
    "ROW_NUMBER", "RANK", "DENSE_RANK", "LAG", "LEAD", "FIRST_VALUE", "LAST_VALUE",
    # conditionals and casts
    "COALESCE", "NULLIF", "GREATEST", "LEAST", "CASE", "IF", "CAST", "EXISTS",
    # text
    "LOWER", "UPPER", "LENGTH", "TRIM", "SUBSTRING", "REPLACE", "CONCAT", "CONCAT_WS",
    "STR_POSITION", "LEFT", "RIGHT", "MD5", "SHA", "SHA2",
    # numbers
    "ABS", "ROUND", "FLOOR", "CEIL", "SIGN", "SQRT", "POWER", "LN", "EXP",
    # time
    "CURRENT_TIMESTAMP", "NOW", "CURRENT_DATE", "CURRENT_TIME", "LOCALTIMESTAMP",
    "UTC_TIMESTAMP", "EXTRACT", "TIMESTAMP_TRUNC", "DATE_TRUNC", "DATE_ADD", "DATE_SUB",
    "DATEDIFF", "TIME_TO_STR", "TO_CHAR",
    # operators sqlglot models as functions (->, ->>, ~, @>)
    "JSON_EXTRACT", "JSON_EXTRACT_SCALAR", "JSONB_EXTRACT", "JSONB_EXTRACT_SCALAR",
    "REGEXP_LIKE", "ARRAY_CONTAINS_ALL",
    # MySQL's VALUES(col) in ON DUPLICATE KEY UPDATE
    "VALUES",
})

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]{0,62})")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_TOKENS = (("'", "string literals"), ('"', "quoted identifiers"), ("`", "quoted identifiers"),
           ("--", "comments"), ("/*", "comments"), ("#", "comments"),
           (";", "more than one statement"), ("$", "dollar quoting"), ("\\", "backslashes"),
           ("@", "session and user variables (@name, @@name)"))
_VERBS = ("select", "insert", "update", "delete", "with")
_REFUSED_NODES = (
    ("Into", "SELECT ... INTO (it creates a table or writes a file or variable)"),
    ("Lock", "locking clauses (FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE): each request is "
             "its own transaction"),
    ("Parameter", "session and user variables"),
    ("SessionParameter", "session and user variables"),
    ("Command", "a statement the parser does not understand"),
)


@dataclass(frozen=True)
class Statement:
    """A checked SQL statement in the drivers' ``pyformat`` style (psycopg and PyMySQL)."""

    text: str
    params: dict[str, Any]
    writes: bool


def _forbidden(msg: str) -> DataError:
    return DataError("ForbiddenStatement", f"sql: {msg}")


def _bad(msg: str) -> DataError:
    return DataError("BadRequest", msg)


def _check_characters(text: str) -> None:
    # The server stops reading at a NUL (PostgreSQL's protocol is C strings), so text after
    # it was checked but never run: refuse NUL and every other control or format character.
    for i, ch in enumerate(text):
        if ch in "\t\n\r":
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise _forbidden(f"control character U+{ord(ch):04X} at offset {i} is not "
                             "allowed; only printable text, spaces, tabs and newlines")


def _check_params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise _bad("params: must be an object of name -> value")
    if len(params) > MAX_PARAMS:
        raise DataError("PayloadTooLarge",
                        f"params: {len(params)} parameters; at most {MAX_PARAMS}")
    for name, value in params.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise _bad(f"params: {name!r} is not a valid parameter name ([A-Za-z_][A-Za-z0-9_]*)")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise _bad(f"params.{name}: {type(value).__name__} values are not allowed; "
                       "allowed: string, number, boolean, null")
        if isinstance(value, str):
            if len(value) > MAX_PARAM_CHARS:
                raise DataError("PayloadTooLarge", f"params.{name}: {len(value)} characters; "
                                f"at most {MAX_PARAM_CHARS}")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _bad(f"params.{name}: not valid Unicode text (a lone surrogate)") from None
            if "\x00" in value:
                raise _bad(f"params.{name}: NUL characters cannot be stored in a text value")
        if isinstance(value, float) and not math.isfinite(value):
            raise _bad(f"params.{name}: {value!r} is not allowed; numbers must be finite")
    return dict(params)


def _check_tree(tree: Any, verb: str) -> bool:
    """Walk the parse tree; returns whether the statement writes."""
    # sqlglot is imported here, not at module level: the data client imports this package
    # for its constants and does not ship the parser.
    from sqlglot import exp

    dml = (exp.Insert, exp.Update, exp.Delete)
    queries = (exp.Select, exp.Union, exp.Intersect, exp.Except)
    refused = [(getattr(exp, kind), what) for kind, what in _REFUSED_NODES]
    if isinstance(tree, dml):
        writes = True
    elif isinstance(tree, queries):
        writes = False
    else:
        raise _forbidden(f"a {type(tree).__name__.upper()} statement is not allowed; allowed: "
                         "SELECT, INSERT, UPDATE, DELETE, WITH ... SELECT")
    if verb == "with" and writes:
        raise _forbidden("WITH is allowed only before a SELECT (a read)")
    for node in tree.walk():
        for kind, what in refused:
            if isinstance(node, kind):
                raise _forbidden(f"{what} is not allowed")
        if node is not tree and isinstance(node, dml):
            raise _forbidden("a data-modifying WITH or nested INSERT/UPDATE/DELETE is not "
                             "allowed; send one statement per write")
        if isinstance(node, exp.Func) and not isinstance(node, exp.Connector):
            name = str(node.name if isinstance(node, exp.Anonymous) else node.sql_name())
            name = name.upper()
            if isinstance(node.parent, exp.Dot):
                raise _forbidden(f"schema-qualified function call ...{name.lower()}() is not "
                                 "allowed")
            if name not in ALLOWED_FUNCTIONS:
                raise _forbidden(f"function {name.lower()}() is not allowed; allowed: "
                                 f"{', '.join(sorted(f.lower() for f in ALLOWED_FUNCTIONS))}")
    return writes


@functools.lru_cache(maxsize=256)
def _checked_text(text: str, verb: str, engine: str) -> tuple[bool, frozenset[str]]:
    """Whether the statement writes, and its parameter names; raises a refusal. Cached: a
    logic function sends the same few statement texts again and again (a refusal is not
    cached, it raises)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        trees = sqlglot.parse(text, read=DIALECTS[engine])
    except SqlglotError as exc:
        first = str(exc).splitlines()[0][:200]
        raise _forbidden(f"not understood as one {engine} statement ({first})") from None
    if len(trees) != 1 or trees[0] is None:
        raise _forbidden("exactly one statement is allowed")
    writes = _check_tree(trees[0], verb)
    used = set(_PARAM.findall(text))
    parsed = {str(p.name) for p in trees[0].find_all(exp.Placeholder)}
    if parsed != used:
        raise _forbidden("only :name parameters are allowed (no ?, %s or positional "
                         "parameters)")
    return writes, frozenset(used)


def check_sql(sql: Any, params: Any, engine: str = "postgres") -> Statement:
    """Check one statement against the allowed subset and bind its named parameters."""
    if not isinstance(sql, str) or not sql.strip():
        raise _bad("sql: must be a non-empty string")
    if len(sql) > MAX_SQL_CHARS:
        raise DataError("PayloadTooLarge", f"sql: {len(sql)} characters; at most {MAX_SQL_CHARS}")
    if engine not in DIALECTS:
        raise _bad(f"sql: engine {engine!r} has no SQL; allowed: {', '.join(DIALECTS)}")
    _check_characters(sql)
    params = _check_params(params)
    text = sql.strip()
    if text.endswith(";"):
        text = text[:-1].rstrip()
    for token, what in _TOKENS:
        if token in text:
            raise _forbidden(f"{what} are not allowed (found {token!r}); pass every value as "
                             "a named parameter (:name) in params")
    verb = text.split(None, 1)[0].lower()
    if verb not in _VERBS:
        raise _forbidden(f"statement starts with {verb.upper()!r}; allowed: "
                         f"{', '.join(v.upper() for v in _VERBS)}")
    writes, used = _checked_text(text, verb, engine)
    missing = sorted(used - set(params))
    if missing:
        raise _bad(f"params: no value for {', '.join(':' + m for m in missing)}")
    unused = sorted(set(params) - used)
    if unused:
        raise _bad(f"params: {', '.join(unused)} not used by the statement")
    # pyformat: a literal % must be doubled; named parameters become %(name)s.
    bound = _PARAM.sub(lambda m: f"%({m.group(1)})s", text.replace("%", "%%"))
    return Statement(bound, params, writes)
