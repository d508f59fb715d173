"""The wrapper's request contract: what is accepted, how it is bound, what is refused."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from components.runtime.data_api import (
    MAX_OBJECT_BYTES,
    MAX_REQUEST_BYTES,
    DataError,
    check_sql,
    parse,
)
from components.runtime.data_client import DataClient, DataClientError, InvokeFailed, is_write


def test_named_parameters_become_driver_placeholders() -> None:
    st = check_sql("SELECT id FROM orders WHERE id = :id AND n::int > :n AND note LIKE :p",
                   {"id": "a", "n": 1, "p": "x%"})
    assert st.text == ("SELECT id FROM orders WHERE id = %(id)s AND n::int > %(n)s AND note "
                       "LIKE %(p)s")
    assert not st.writes
    assert check_sql("UPDATE t SET v = v % 2 WHERE k = :k;", {"k": 1}).text == \
        "UPDATE t SET v = v %% 2 WHERE k = %(k)s"
    assert check_sql("insert into t (k) values (:k)", {"k": 1}).writes


def test_valid_requests_of_every_kind() -> None:
    assert parse({"op": "sql", "sql": "DELETE FROM t WHERE k = :k", "params": {"k": "x"},
                  "idempotency_key": "k-1"}).writes
    assert parse({"op": "kv.put", "item": {"pk": "a", "sk": "b", "n": 1.5}}).writes
    assert not parse({"op": "kv.get", "key": {"pk": "a", "sk": "b"}}).writes
    put = parse({"op": "object.put", "key": "a/b.txt",
                 "body_b64": base64.b64encode(b"\x00\x01").decode()})
    assert put.data == b"\x00\x01" and put.writes
    assert parse({"op": "object.list"}).extra == {"prefix": "", "limit": 100}


BAD: list[tuple[str, Any, str, str]] = [
    ("not an object", ["op", "sql"], "BadRequest", "expected a JSON object"),
    ("unknown op", {"op": "sql.exec"}, "UnknownOperation", "allowed: sql, kv.get"),
    ("no op", {"sql": "SELECT 1"}, "UnknownOperation", "op: None"),
    ("missing field", {"op": "kv.get"}, "BadRequest", "missing key"),
    ("unknown field", {"op": "kv.get", "key": {"pk": "a"}, "table": "x"}, "BadRequest",
     "unknown field(s) table"),
    ("string literal", {"op": "sql", "sql": "SELECT * FROM t WHERE name = 'x' OR '1'='1'"},
     "ForbiddenStatement", "string literals"),
    ("stacked statement", {"op": "sql", "sql": "SELECT 1; DROP TABLE orders"},
     "ForbiddenStatement", "more than one statement"),
    ("comment", {"op": "sql", "sql": "SELECT * FROM t -- WHERE tenant = :t"},
     "ForbiddenStatement", "comments"),
    ("block comment", {"op": "sql", "sql": "SELECT /* x */ 1"}, "ForbiddenStatement",
     "comments"),
    ("ddl", {"op": "sql", "sql": "DROP TABLE orders"}, "ForbiddenStatement",
     "starts with 'DROP'"),
    ("grant", {"op": "sql", "sql": "GRANT ALL ON orders TO public"}, "ForbiddenStatement",
     "allowed: SELECT, INSERT"),
    ("dollar quoting", {"op": "sql", "sql": "SELECT $$x$$"}, "ForbiddenStatement",
     "dollar quoting"),
    ("missing parameter", {"op": "sql", "sql": "SELECT * FROM t WHERE k = :k"}, "BadRequest",
     "no value for :k"),
    ("unused parameter", {"op": "sql", "sql": "SELECT 1", "params": {"k": 1}}, "BadRequest",
     "k not used"),
    ("object parameter", {"op": "sql", "sql": "SELECT :k", "params": {"k": {"a": 1}}},
     "BadRequest", "dict values are not allowed"),
    ("bad parameter name", {"op": "sql", "sql": "SELECT 1", "params": {"a-b": 1}}, "BadRequest",
     "not a valid parameter name"),
    ("idempotency on a read", {"op": "sql", "sql": "SELECT 1", "idempotency_key": "k"},
     "BadRequest", "only for writing statements"),
    ("bad idempotency key", {"op": "kv.put", "item": {"pk": "a"}, "idempotency_key": "a b"},
     "BadRequest", "idempotency_key"),
    ("max_rows", {"op": "sql", "sql": "SELECT 1", "max_rows": 0}, "BadRequest",
     "not an integer in 1..1000"),
    ("oversized request", {"op": "sql", "sql": "SELECT :a", "params": {
        "a": "x" * (MAX_REQUEST_BYTES + 1)}}, "PayloadTooLarge", "at most"),
    ("oversized object", {"op": "object.put", "key": "k", "body": "x" * (MAX_OBJECT_BYTES + 1)},
     "PayloadTooLarge", f"at most {MAX_OBJECT_BYTES}"),
    ("both bodies", {"op": "object.put", "key": "k", "body": "a", "body_b64": "YQ=="},
     "BadRequest", "exactly one of body"),
    ("bad base64", {"op": "object.put", "key": "k", "body_b64": "***"}, "BadRequest",
     "not valid base64"),
    ("reserved key", {"op": "object.get", "key": "_standby-probe/x"}, "BadRequest", "reserved"),
    ("empty key", {"op": "kv.get", "key": {}}, "BadRequest", "non-empty object"),
    ("list limit", {"op": "object.list", "limit": 5000}, "BadRequest", "1..1000"),
]


@pytest.mark.parametrize(("what", "event", "code", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_code_and_a_message_naming_the_problem(
        what: str, event: Any, code: str, says: str) -> None:
    with pytest.raises(DataError) as err:
        parse(event)
    assert err.value.code == code
    assert says in err.value.message
    answer = err.value.answer()
    assert answer["ok"] is False and answer["error"]["retryable"] is False


def test_client_adds_idempotency_keys_to_writes_only() -> None:
    seen: list[dict[str, Any]] = []

    def invoke(fn: str, req: dict[str, Any]) -> dict[str, Any]:
        seen.append(req)
        return {"ok": True, "result": {"row_count": 1}}

    client = DataClient(invoke, {"primary": "p", "standby": "s"})
    client.sql("INSERT INTO t (k) VALUES (:k)", {"k": 1})
    client.sql("SELECT k FROM t WHERE k = :k", {"k": 1})
    assert "idempotency_key" in seen[0] and "idempotency_key" not in seen[1]
    # WITH must end in a read (the wrapper refuses a data-modifying WITH): no key row for it.
    assert not is_write({"op": "sql", "sql": "with x as (select 1) select * from x"})
    assert is_write({"op": "sql", "sql": "delete from t where k = :k"})
    assert not is_write({"op": "object.get", "key": "k"})


def test_client_falls_back_to_the_other_wrapper_with_the_same_key() -> None:
    calls: list[tuple[str, str]] = []

    def invoke(fn: str, req: dict[str, Any]) -> dict[str, Any]:
        calls.append((fn, req["idempotency_key"]))
        if fn == "p":
            raise InvokeFailed("connection refused")
        return {"ok": True, "result": {"row_count": 1}, "served": {"data_region": "r1"}}

    client = DataClient(invoke, {"primary": "p", "standby": "s"}, pointer=lambda: "primary")
    assert client.sql("INSERT INTO t (k) VALUES (:k)", {"k": 1}) == {"row_count": 1}
    assert [c[0] for c in calls] == ["p", "s"] and calls[0][1] == calls[1][1]
    assert client.last_served["wrapper_side"] == "standby"


def test_client_retries_a_retryable_answer_once_then_raises() -> None:
    n = {"calls": 0}

    def invoke(fn: str, req: dict[str, Any]) -> dict[str, Any]:
        n["calls"] += 1
        return {"ok": False, "error": {"code": "NotPrimary", "message": "read-only",
                                       "retryable": True}}

    client = DataClient(invoke, {"primary": "p", "standby": "s"}, sleep=lambda s: None)
    with pytest.raises(DataClientError) as err:
        client.sql("UPDATE t SET v = :v", {"v": 1})
    assert err.value.code == "NotPrimary" and err.value.retryable and n["calls"] == 2


def test_client_with_both_wrappers_down_says_so() -> None:
    def invoke(fn: str, req: dict[str, Any]) -> dict[str, Any]:
        raise InvokeFailed(f"{fn} down")

    with pytest.raises(DataClientError) as err:
        DataClient(invoke, {"primary": "p", "standby": "s"}).sql("SELECT 1")
    assert err.value.code == "Unavailable" and "p down" in err.value.message
    assert "s down" in err.value.message


def test_pointer_cache_backs_off_one_ttl_after_a_failed_read() -> None:
    from components.runtime.pointer_cache import PointerCache, PointerUnavailable

    now = {"t": 0.0}
    reads = {"n": 0, "fail": False}

    def read(consistent: bool) -> str:
        reads["n"] += 1
        if reads["fail"]:
            raise OSError("table unreachable")
        return "us-east-1"

    cache: PointerCache[str] = PointerCache(read, 5.0, clock=lambda: now["t"])
    assert cache.get() == "us-east-1" and reads["n"] == 1
    reads["fail"] = True
    now["t"] = 6.0
    assert cache.get() == "us-east-1" and reads["n"] == 2  # stale value kept
    assert cache.get() == "us-east-1" and reads["n"] == 2  # no read until one TTL later
    with pytest.raises(PointerUnavailable):
        cache.get(fresh=True)  # a consistent read never answers from the cache
    with pytest.raises(PointerUnavailable):
        PointerCache(read, 5.0).get()
