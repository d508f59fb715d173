"""PostgreSQL catalog reads and privilege changes of the migration, on one connection:
the tables with their keys, replica identity and columns; the sequences; the write grants
a fence takes away and gives back."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from components.migrate.pg_verify import Table

#: What a fence revokes: every way the application changes a migrated table's rows.
FENCE_PRIVS = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")


def _all(conn: Any, q: Any, args: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(q, args)
        return list(cur.fetchall())


def tables(conn: Any) -> list[dict[str, Any]]:
    """Every ordinary table outside the system schemas, with its row estimate, size, key
    (the primary key, else the replica identity index) and columns."""
    rows = _all(conn, """
        SELECT c.oid, n.nspname, c.relname, c.relreplident,
               greatest(c.reltuples, s.n_live_tup, 0)::bigint, pg_total_relation_size(c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
        ORDER BY 2, 3""")
    out = []
    for oid, schema, name, ident, est, size in rows:
        def key(flag: str, oid: int = oid) -> list[tuple[str, str]]:
            return [(str(a), str(t)) for a, t in _all(conn, sql.SQL("""
                SELECT a.attname, format_type(a.atttypid, a.atttypmod)
                FROM pg_index i CROSS JOIN unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = %s AND i.{} ORDER BY k.ord""").format(
                sql.Identifier(flag)), (oid,))]
        pk, ri = key("indisprimary"), key("indisreplident")
        cols = _all(conn, "SELECT attname, format_type(atttypid, atttypmod) FROM "
                          "pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT "
                          "attisdropped ORDER BY attnum", (oid,))
        keycols = pk if pk else ri
        out.append({"schema": schema, "name": name, "ident": ident, "rows": int(est),
                    "bytes": int(size), "pk": bool(pk), "ri_index": bool(ri),
                    "key": [k for k, _ in keycols], "key_types": [t for _, t in keycols],
                    "columns": [[str(a), str(t)] for a, t in cols]})
    return out


def sequences(conn: Any) -> list[str]:
    return [f"{s}.{n}" for s, n in _all(
        conn, "SELECT schemaname, sequencename FROM pg_sequences ORDER BY 1, 2")]


def write_grants(conn: Any, tabs: list[Table]) -> list[list[str]]:
    """[schema, table, grantee, privilege] for every non-superuser write grant (the owner's
    implicit ones included; PUBLIC as 'PUBLIC')."""
    out: list[list[str]] = []
    for t in tabs:
        out += [[t.schema, t.name, str(g), str(p)] for g, p in _all(conn, """
            SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
                   a.privilege_type
            FROM pg_class c CROSS JOIN aclexplode(coalesce(c.relacl,
                 acldefault('r', c.relowner))) a
            LEFT JOIN pg_roles r ON r.oid = a.grantee
            WHERE c.oid = %s::regclass AND a.privilege_type = ANY(%s)
              AND NOT coalesce(r.rolsuper, false)
            ORDER BY 1, 2""", (sql.Identifier(t.schema, t.name).as_string(conn),
                               list(FENCE_PRIVS)))]
    return out


def change_grants(conn: Any, grants: list[list[str]], give: bool) -> None:
    """GRANT (``give``) or REVOKE each recorded grant; both are idempotent. The grantee is
    as ``regrole::text`` printed it, already quoted where it needs to be."""
    for schema, name, grantee, priv in grants:
        who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.SQL(grantee)
        q = (sql.SQL("GRANT {} ON {} TO {}") if give else sql.SQL("REVOKE {} ON {} FROM {}"))
        with conn.cursor() as cur:
            cur.execute(q.format(sql.SQL(priv), sql.Identifier(schema, name), who))
