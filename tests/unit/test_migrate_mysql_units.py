"""The MySQL engine's URLs, binlog positions and SQL, without a server."""

from __future__ import annotations

from typing import Any, ClassVar

import pymysql
import pytest

from components.migrate import UrlError, make_adapter
from components.migrate.mysql_binlog import Pos, master_pos
from components.migrate.mysql_sql import Table
from components.migrate.urls import endpoint


def test_mysql_url_defaults_to_3306_and_never_shows_the_password() -> None:
    ep = endpoint("mysql://admin:s3cret@db.local/orders")
    assert (ep.kind, ep.host, ep.port, ep.database) == ("mysql", "db.local", 3306, "orders")
    assert ep.shown == "mysql://admin@db.local:3306/orders"
    assert endpoint("mariadb://a:b@h:3307/x").kind == "mysql"


@pytest.mark.parametrize("url,match", [
    ("mysql://h:3306/db", "a user and no \\?options"),
    ("mysql://u:p@h:3306/db?ssl=1", "a user and no \\?options"),
    ("mysql://u:p@h:3306/", "a host and a database are required; allowed: mysql://"),
    ("mysql://u:p@h:99999/db", "port is not a number"),
])
def test_bad_mysql_urls_name_the_allowed_form(url: str, match: str) -> None:
    with pytest.raises(UrlError, match=match):
        endpoint(url)


def test_mysql_and_postgresql_endpoints_are_not_mixed() -> None:
    with pytest.raises(UrlError, match="--source is mysql and --target is postgresql"):
        make_adapter("m", "mysql://u:p@h/db", "postgresql://u:p@h/db")


def test_binlog_position_orders_by_file_number_then_offset() -> None:
    # binlog.1000000 follows binlog.999999 although it sorts before it as text.
    assert Pos.of("binlog.999999", 900) < Pos.of("binlog.1000000", 4)
    assert Pos.of("binlog.000002", 4) < Pos.of("binlog.000002", 5)
    assert Pos.from_json(Pos.of("b.000007", 123).to_json()) == Pos.of("b.000007", 123)


def test_chunk_select_is_locked_and_continues_after_the_composite_key() -> None:
    t = Table("pairs", ("a", "b", "v"), ("a", "b"))
    sql, args = t.select_chunk((3, "k7"), 100)
    assert sql == ("SELECT `a`, `b`, `v` FROM `pairs` WHERE (`a`, `b`) > (%s, %s) "
                   "ORDER BY `a`, `b` LIMIT 100 FOR UPDATE")
    assert args == [3, "k7"]
    assert t.insert_ignore(2).startswith("INSERT IGNORE INTO `pairs`")
    assert t.replace().startswith("REPLACE INTO `pairs`")
    assert Table("we`ird", ("k",), ("k",)).ident == "`we``ird`"


class _BinlogStatusCursor:
    """Answers ``SHOW ... STATUS`` for the binary log as the named server does. MySQL 8.4
    removed SHOW MASTER STATUS (Reference Manual 8.4, "Changes in MySQL 8.4": a removed
    statement is syntax error 1064; SHOW BINARY LOG STATUS exists since 8.2); MariaDB 10.11
    has SHOW BINLOG STATUS (10.5.2+) and SHOW MASTER STATUS, but not SHOW BINARY LOG STATUS.
    No MySQL 8.4 server installs on Debian, so the answers follow the manuals."""

    KNOWN: ClassVar[dict[str, set[str]]] = {"mysql-8.4": {"SHOW BINARY LOG STATUS"},
                                            "mariadb-10.11": {"SHOW BINLOG STATUS",
                                                              "SHOW MASTER STATUS"}}

    def __init__(self, server: str) -> None:
        self.known = self.KNOWN[server]
        self.ran: list[str] = []

    def execute(self, sql: str, args: Any = None) -> None:
        if sql not in self.known:
            raise pymysql.err.ProgrammingError(1064, f"syntax error near {sql!r}")
        self.ran.append(sql)

    def fetchone(self) -> Any:
        return ("binlog.000007", 4711, "", "")


@pytest.mark.parametrize(("server", "spoken"), [
    ("mysql-8.4", "SHOW BINARY LOG STATUS"), ("mariadb-10.11", "SHOW BINLOG STATUS")])
def test_binlog_position_is_read_on_mysql_84_which_removed_show_master_status(
        server: str, spoken: str) -> None:
    cur = _BinlogStatusCursor(server)
    assert master_pos(cur) == Pos.of("binlog.000007", 4711)
    assert cur.ran == [spoken]
