"""The endpoint and state URLs of ``standby migrate``, checked before anything connects."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ENDPOINT_FORMS = ("postgresql://USER:PASSWORD@HOST:PORT/DB, mysql://USER:PASSWORD@HOST:PORT/DB, "
                  "dynamodb://TABLE?region=REGION&endpoint_url=URL, "
                  "s3://BUCKET/PREFIX?region=REGION&endpoint_url=URL")
SUPPORTED = ("postgresql", "mysql", "dynamodb")
STATE_FORMS = "sqlite:///RELATIVE/PATH, sqlite:////ABSOLUTE/PATH (default " \
              "sqlite:///.standby/migrate.sqlite) or dynamodb://TABLE?region=REGION" \
              "[&endpoint_url=http://HOST:PORT]"
DEFAULT_STATE = "sqlite:///.standby/migrate.sqlite"
ID_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
ID_HELP = "1-40 characters: a lowercase letter, then lowercase letters, digits or '_'"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UrlError(ValueError):
    """A URL or id that names what is wrong and what is allowed."""


@dataclass(frozen=True)
class Endpoint:
    kind: str  # postgresql or mysql
    url: str  # as given, with the password: only ever passed to the driver
    host: str
    port: int
    database: str
    region: str = ""  # dynamodb only
    endpoint_url: str | None = None  # dynamodb only: a local endpoint (moto, DynamoDB Local)

    @property
    def shown(self) -> str:
        """The URL without its password: what is stored, logged and printed."""
        if self.kind == "dynamodb":
            return self.url  # a DynamoDB URL carries no secret (credentials come from AWS)
        parts = urlsplit(self.url)
        user = parts.username or ""
        netloc = f"{user}@" if user else ""
        netloc += f"{self.host}:{self.port}"
        return urlunsplit((self.kind, netloc, parts.path, parts.query, ""))


def _shown(value: str) -> str:
    parts = urlsplit(value) if "://" in value else None
    if parts is not None and parts.password:
        value = value.replace(f":{parts.password}@", ":***@")
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + "...'"


def migration_id(value: str) -> str:
    if not ID_RE.fullmatch(value):
        raise UrlError(f"--id {_shown(value)}; allowed: {ID_HELP}")
    return value


def endpoint(value: str, what: str = "--source") -> Endpoint:
    bad = f"{what} {_shown(value)}"
    if not value or len(value) > 2048 or _CONTROL.search(value) or "://" not in value:
        raise UrlError(f"{bad} is not a URL; allowed: {ENDPOINT_FORMS}")
    scheme = value.split("://", 1)[0].lower()
    if scheme == "postgres":
        scheme = "postgresql"
    if scheme == "dynamodb":
        return dynamodb_endpoint(value, what)
    if scheme == "mariadb":  # one engine, one protocol
        scheme = "mysql"
    if scheme == "s3":
        raise UrlError(f"{bad}: {scheme} migrations are not built yet; allowed now: "
                       "postgresql://USER:PASSWORD@HOST:PORT/DB, "
                       "mysql://USER:PASSWORD@HOST:PORT/DB, dynamodb://TABLE?region=REGION")
    if scheme not in SUPPORTED:
        raise UrlError(f"{bad}: unknown scheme {scheme!r}; allowed: {ENDPOINT_FORMS}")
    form = f"{scheme}://USER:PASSWORD@HOST:PORT/DB"
    try:
        parts = urlsplit(value)
        port = parts.port or (5432 if scheme == "postgresql" else 3306)
    except ValueError:
        raise UrlError(f"{bad}: the port is not a number in 1..65535; allowed: {form}") from None
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not database or "/" in database or port == 0:
        raise UrlError(f"{bad}: a host and a database are required; allowed: {form}")
    if parts.fragment:
        raise UrlError(f"{bad}: no #fragment; allowed: {form}")
    if scheme == "mysql" and (parts.query or not parts.username):
        raise UrlError(f"{bad}: a user and no ?options; allowed: {form}")
    return Endpoint(scheme, value, parts.hostname, port, database)


def state_path(value: str | None, base: Path | None = None) -> Path:
    """The SQLite file of ``--state``; relative paths are under ``base`` (the project)."""
    value = value or DEFAULT_STATE
    if value.startswith("dynamodb://"):
        raise UrlError(f"--state {_shown(value)} is a DynamoDB table, not a file; allowed "
                       "here: sqlite:///PATH")
    if not value.startswith("sqlite:///") or _CONTROL.search(value) or len(value) > 4096:
        raise UrlError(f"--state {_shown(value)}; allowed: {STATE_FORMS}")
    rest = value[len("sqlite:///"):]
    if not rest or rest.endswith("/"):
        raise UrlError(f"--state {_shown(value)}: no file name; allowed: {STATE_FORMS}")
    path = Path(rest)
    return path if path.is_absolute() else (base or Path.cwd()) / path


_TABLE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+){1,4}")


@dataclass(frozen=True)
class DynamoState:
    table: str
    region: str
    endpoint_url: str | None


def state_url(value: str | None, base: Path | None = None) -> Path | DynamoState:
    """``--state``: a SQLite file, or a DynamoDB table with its region (and endpoint)."""
    value = value or DEFAULT_STATE
    if not value.startswith("dynamodb://"):
        return state_path(value, base)
    bad = f"--state {_shown(value)}"
    if _CONTROL.search(value) or len(value) > 2048:
        raise UrlError(f"{bad}; allowed: {STATE_FORMS}")
    parts = urlsplit(value)
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    unknown = sorted(set(query) - {"region", "endpoint_url"})
    if not _TABLE.fullmatch(parts.netloc) or parts.path not in ("", "/") or unknown:
        raise UrlError(f"{bad}: a table name (3-255 of A-Z a-z 0-9 _ . -) and only region and "
                       f"endpoint_url; allowed: {STATE_FORMS}")
    region = unquote(query.get("region", ""))
    if not _REGION.fullmatch(region):
        raise UrlError(f"{bad}: region= is required (like us-east-1); allowed: {STATE_FORMS}")
    endpoint_url = unquote(query["endpoint_url"]) if "endpoint_url" in query else None
    if endpoint_url is not None:
        e = urlsplit(endpoint_url)
        if e.scheme not in ("http", "https") or not e.hostname:
            raise UrlError(f"{bad}: endpoint_url must be http(s)://HOST[:PORT]; allowed: "
                           f"{STATE_FORMS}")
    return DynamoState(parts.netloc, region, endpoint_url)


DYNAMODB_FORM = "dynamodb://TABLE?region=REGION[&endpoint_url=http://HOST:PORT]"


def dynamodb_endpoint(value: str, what: str = "--source") -> Endpoint:
    """``dynamodb://TABLE?region=...&endpoint_url=...``: a table to migrate."""
    bad = f"{what} {_shown(value)}"
    try:
        where = state_url(value)
    except UrlError as exc:
        detail = str(exc).split(": ", 1)[-1].split("; allowed", 1)[0]
        raise UrlError(f"{bad}: {detail}; allowed: {DYNAMODB_FORM}") from None
    assert isinstance(where, DynamoState)
    if where.endpoint_url is not None:
        e = urlsplit(where.endpoint_url)
        host, port = e.hostname or "", e.port or (443 if e.scheme == "https" else 80)
    else:
        host, port = f"dynamodb.{where.region}.amazonaws.com", 443
    return Endpoint("dynamodb", value, host, port, where.table, where.region, where.endpoint_url)
