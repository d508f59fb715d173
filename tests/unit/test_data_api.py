"""The wrapper's request contract: what is accepted, how it is bound, what is refused."""

from __future__ import annotations

import base64
import json
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
    ("bad idempotency key", {"op": "kv.put", "item": {"pk": "a", "sk": "b"},
                             "idempotency_key": "a b"},
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


# -- the SQL gate (issue 11): an allow-list over the parse tree, in both dialects ------------

GATE_REFUSALS = [
    ("nul_byte_truncates_the_statement", "DELETE FROM orders\x00 WHERE id = :id", "U+0000"),
    ("other_control_character", "SELECT id FROM orders\x0b WHERE id = :id", "U+000B"),
    ("zero_width_format_character", "SELECT id\u200b FROM orders WHERE id = :id", "U+200B"),
    ("select_into_creates_a_table", "SELECT id INTO copy FROM orders WHERE id = :id",
     "SELECT ... INTO"),
    ("select_into_outfile", "SELECT id FROM orders WHERE id = :id INTO OUTFILE :f",
     "not understood"),
    ("lo_from_bytea", "SELECT lo_from_bytea(0, :id)", "lo_from_bytea()"),
    ("pg_advisory_lock", "SELECT pg_advisory_lock(:id)", "pg_advisory_lock()"),
    ("set_config_unfences", "SELECT set_config(:id, :id, false)", "set_config()"),
    ("pg_terminate_backend", "SELECT pg_terminate_backend(:id)", "pg_terminate_backend()"),
    ("pg_sleep", "SELECT pg_sleep(:id)", "pg_sleep()"),
    ("mysql_sleep", "SELECT sleep(:id)", "sleep()"),
    ("load_file", "SELECT load_file(:id)", "load_file()"),
    ("nextval_writes_a_sequence", "SELECT nextval(:id)", "nextval()"),
    ("generate_series_amplifies", "SELECT count(*) FROM generate_series(1, :id)",
     "not allowed"),
    ("schema_qualified_function", "SELECT pg_catalog.lower(:id)", "schema-qualified"),
    ("for_update", "SELECT id FROM orders WHERE id = :id FOR UPDATE", "locking clauses"),
    ("lock_in_share_mode", "SELECT id FROM orders WHERE id = :id LOCK IN SHARE MODE",
     "locking clauses"),
    ("session_variable", "SELECT @@read_only FROM orders WHERE id = :id", "session and user"),
    ("data_modifying_with", "WITH d AS (DELETE FROM orders WHERE id = :id RETURNING id) "
     "SELECT id FROM d", "data-modifying WITH"),
    ("insert_inside_update", "UPDATE orders SET item = :id WHERE id IN "
     "(WITH x AS (INSERT INTO t (a) VALUES (:id) RETURNING a) SELECT a FROM x)",
     "data-modifying WITH"),
    ("positional_parameter", "SELECT id FROM orders WHERE id = ? AND k = :id",
     "only :name parameters"),
    ("truncate", "TRUNCATE orders", "allowed: SELECT"),
    ("replace_into", "REPLACE INTO orders (id) VALUES (:id)", "allowed: SELECT"),
]


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
@pytest.mark.parametrize(("sql", "says"), [(s, m) for _, s, m in GATE_REFUSALS],
                         ids=[g[0] for g in GATE_REFUSALS])
def test_gate_refuses_statements_with_side_effects(engine: str, sql: str, says: str) -> None:
    with pytest.raises(DataError) as err:
        check_sql(sql, {"id": "x", "f": "/tmp/x"} if ":f" in sql else {"id": "x"}, engine)
    assert err.value.code == "ForbiddenStatement"
    assert says in err.value.message, err.value.message


GATE_ALLOWED = [
    ("SELECT id, count(*) AS n, max(item), coalesce(item, :d), lower(item), upper(item) "
     "FROM orders WHERE id = :id GROUP BY id, item HAVING count(*) > :n ORDER BY id LIMIT :l",
     False),
    ("SELECT o.id FROM orders o JOIN lines l ON l.order_id = o.id WHERE o.id IN "
     "(SELECT order_id FROM lines WHERE qty > :n) AND o.created_at < now()", False),
    ("WITH recent AS (SELECT id FROM orders WHERE id > :id) SELECT count(*) FROM recent", False),
    ("SELECT id FROM a WHERE k = :id UNION SELECT id FROM b WHERE k = :id", False),
    ("INSERT INTO orders (id, item) VALUES (:id, :item)", True),
    ("INSERT INTO orders (id, item) SELECT id, item FROM staging WHERE id = :id", True),
    ("UPDATE orders SET item = :item, n = n + 1 WHERE id = :id", True),
    ("DELETE FROM orders WHERE id = :id", True),
]


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
@pytest.mark.parametrize(("sql", "writes"), GATE_ALLOWED)
def test_gate_accepts_plain_reads_and_writes(engine: str, sql: str, writes: bool) -> None:
    params = {k: "v" for k in ("d", "id", "n", "l", "item") if f":{k}" in sql}
    assert check_sql(sql, params, engine).writes is writes


def test_gate_accepts_postgres_upsert_and_mysql_on_duplicate_key() -> None:
    assert check_sql("INSERT INTO t (k, v) VALUES (:k, :v) ON CONFLICT (k) DO UPDATE SET "
                     "v = excluded.v RETURNING k", {"k": 1, "v": 2}, "postgres").writes
    assert check_sql("INSERT INTO t (k, v) VALUES (:k, :v) ON DUPLICATE KEY UPDATE "
                     "v = VALUES(v)", {"k": 1, "v": 2}, "mysql").writes


@pytest.mark.parametrize(("value", "says"), [(float("nan"), "finite"),
                                             (float("inf"), "finite"),
                                             ("a\ud800", "lone surrogate"),
                                             ("a\x00b", "NUL")])
def test_gate_refuses_parameters_the_server_cannot_take(value: Any, says: str) -> None:
    with pytest.raises(DataError) as err:
        check_sql("INSERT INTO t (k) VALUES (:k)", {"k": value})
    assert err.value.code == "BadRequest" and says in err.value.message


def test_with_is_a_read_for_the_client_and_the_wrapper() -> None:
    assert not parse({"op": "sql", "sql": "WITH x AS (SELECT 1) SELECT * FROM x"}).writes
    with pytest.raises(DataError) as err:
        parse({"op": "sql", "sql": "WITH x AS (SELECT 1) SELECT * FROM x",
               "idempotency_key": "k1"})
    assert "only for writing statements" in err.value.message


# -- key-value values: DynamoDB's limits, checked before any SDK call --------------------------


def test_kv_numbers_at_dynamodb_limits() -> None:
    ok = parse({"op": "kv.put", "item": {"pk": "a", "sk": "b", "lo": 1e-130, "hi": 9.99e125,
                                         "big": 10**40, "zero": 0, "neg": -1.5}})
    item = ok.extra["item"]
    assert str(item["big"]) == "1E+40" and str(item["lo"]) == "1E-130" and item["zero"] == 0
    for bad in (1e126, 1e-131, 10**38 + 1, -1e300):
        with pytest.raises(DataError) as err:
            parse({"op": "kv.put", "item": {"pk": "a", "sk": "b", "n": bad}})
        assert err.value.code == "BadRequest"


def test_kv_key_must_be_the_tables_key() -> None:
    with pytest.raises(DataError) as err:
        parse({"op": "kv.get", "key": {"pk": "a", "sk": "b", "x": 1}})
    assert "x not part of the key" in err.value.message
    with pytest.raises(DataError) as err:
        parse({"op": "kv.put", "item": {"pk": "a", "sk": 5}})
    assert "sk: missing or not a non-empty string" in err.value.message


# -- server errors -> codes -------------------------------------------------------------------


@pytest.mark.parametrize(("state", "code"), [
    ("42501", "PermissionDenied"), ("57014", "Timeout"), ("25006", "NotPrimary"),
    ("57P01", "Unavailable"), ("08006", "Unavailable"), ("53300", "Unavailable"),
    ("40P01", "Aborted"), ("23505", "Conflict"), ("22P02", "BadRequest"),
    ("42P01", "BadRequest"), ("XX000", "Internal"), ("53100", "Internal")])
def test_postgres_errors_map_by_sqlstate_class(state: str, code: str) -> None:
    import psycopg.errors

    from components.runtime.sql_errors import classify

    exc = psycopg.errors.lookup(state)("server says no")
    err = classify(exc, "postgres", "127.0.0.1", 5432)
    assert err.code == code, err.message
    assert err.retryable is (code in ("NotPrimary", "Unavailable", "Aborted"))


@pytest.mark.parametrize(("errno", "code"), [
    (1045, "PermissionDenied"),  # FILE privilege (INTO OUTFILE, LOAD_FILE) or bad password
    (1227, "PermissionDenied"), (1142, "PermissionDenied"),
    (1969, "Timeout"),           # MariaDB max_statement_time: a cut-off SLEEP
    (3024, "Timeout"),           # MySQL max_execution_time
    (1317, "Timeout"), (1205, "Timeout"),
    (1290, "NotPrimary"), (1836, "NotPrimary"),
    (2003, "Unavailable"), (2013, "Unavailable"), (1053, "Unavailable"), (1040, "Unavailable"),
    (1213, "Aborted"), (1062, "Conflict"), (1064, "BadRequest"), (1146, "BadRequest"),
    (1030, "Internal"), (2027, "Internal")])
def test_mysql_errors_map_by_errno(errno: int, code: str) -> None:
    import pymysql.err

    from components.runtime.sql_errors import classify

    # PyMySQL also sets a coarse SQLSTATE ("42000" for a privilege error): errno decides.
    exc = pymysql.err.OperationalError(errno, "server says no", sqlstate="42000")
    err = classify(exc, "mysql", "127.0.0.1", 3306)
    assert err.code == code, err.message


# -- recent idempotency keys and the pointer cache -------------------------------------------


def test_recent_keys_replay_conflict_expiry_and_bound() -> None:
    from components.runtime import recent_keys as rk

    entries = rk.remember([], "K1", "h1", now=100, window_s=50)
    entries = rk.remember(entries, "K2", "h2", now=120, window_s=50)
    assert rk.seen(entries, "K1", "h1", "put") and not rk.seen(entries, "K3", "h3", "put")
    with pytest.raises(DataError) as err:
        rk.seen(entries, "K1", "other", "put")
    assert err.value.code == "Conflict"
    later = rk.remember(entries, None, "h", now=160, window_s=50)
    assert [e.key for e in later] == ["K2"]  # K1 expired
    many: list[rk.Entry] = []
    for i in range(rk.MAX_KEYS + 5):
        many = rk.remember(many, f"K{i}", "h", now=200, window_s=50)
    assert len(many) == rk.MAX_KEYS and many[-1].key == f"K{rk.MAX_KEYS + 4}"
    assert rk.from_plain(rk.to_plain(many)) == many
    assert rk.from_plain([{"k": 1}, "junk", {"k": "a", "h": "b", "t": "x"}]) == []


def test_pointer_cache_serves_a_failed_refresh_only_within_max_age() -> None:
    from components.runtime.pointer_cache import PointerCache, PointerUnavailable

    now = [0.0]
    reads: list[bool] = []
    up = [True]

    def read(consistent: bool) -> str:
        reads.append(consistent)
        if not up[0]:
            raise ConnectionError("pointer table unreachable")
        return "us-east-1"

    cache = PointerCache(read, 5.0, clock=lambda: now[0])
    assert cache.get() == "us-east-1"
    up[0] = False
    now[0] = 6.0
    assert cache.get(max_age=60) == "us-east-1"  # a read, within the bounded staleness
    with pytest.raises(PointerUnavailable) as err:
        cache.get(max_age=5)                      # a write: the value is older than one TTL
    assert "last read 6s ago, allowed 5s" in str(err.value)
    now[0] = 70.0
    with pytest.raises(PointerUnavailable):
        cache.get(max_age=60)
    up[0] = True
    assert cache.get(max_age=5) == "us-east-1" and cache.age() == 0


def test_a_sql_write_reads_the_data_pointer_now_never_from_the_cache() -> None:
    # Regression: on SQL engines a write used the cached data pointer, so for up to one TTL
    # after a switch it could reach the old primary (RDS has no synchronous fence) and be
    # acknowledged there, then lost. Writes now read the pointer strongly consistent; reads
    # keep using the cache.
    from components.runtime.wrapper import Wrapper, load_config

    pointer: list[tuple[str, int]] = [("us-east-1", 1)]
    reads: list[bool] = []
    used: list[str] = []

    class Backends:
        def read_pointer(self, key: str, consistent: bool) -> tuple[str, int]:
            reads.append(consistent)
            return pointer[0]

    class Pool:
        def __init__(self, region: str) -> None:
            self.region = region

        def execute(self, *args: object) -> dict[str, object]:
            used.append(self.region)
            return {"row_count": 1}

    class Probe(Wrapper):
        def _pool(self, region: str) -> Any:
            return Pool(region)

    env = {"STANDBY_TOPOLOGY": "shop", "STANDBY_SIDE": "primary", "STANDBY_REGION": "us-east-1",
           "STANDBY_POINTER_TABLE": "t", "STANDBY_POINTER_CACHE_S": "60",
           "STANDBY_DB_ENGINE": "postgres",
           "STANDBY_DATA_REGIONS": json.dumps(["us-east-1", "us-west-2"]),
           "STANDBY_DB_ENDPOINTS": json.dumps({"us-east-1": "db1:5432", "us-west-2": "db2:5432"}),
           "STANDBY_DB_NAME": "orders", "STANDBY_DB_SECRET_ARN": "arn:aws:secretsmanager:x"}
    w = Probe(load_config(env), Backends(), clock=lambda: 0.0)  # type: ignore[arg-type]
    write = {"op": "sql", "sql": "INSERT INTO orders (id) VALUES (:id)", "params": {"id": "1"},
             "idempotency_key": "k1"}
    read = {"op": "sql", "sql": "SELECT id FROM orders WHERE id = :id", "params": {"id": "1"}}
    assert w.handle(write)["ok"] and w.handle(read)["ok"]
    pointer[0] = ("us-west-2", 2)  # the switch, within the cache's 60 s
    assert w.handle(dict(write, idempotency_key="k2"))["served"]["data_region"] == "us-west-2"
    assert used == ["us-east-1", "us-east-1", "us-west-2"]
    assert reads == [True, True]  # each write read it consistently; the read used the cache
