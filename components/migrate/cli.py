"""``standby migrate ...``: the command line of the migration engine.

Exit codes follow ``standby``: 0 done, 2 bad input (``error: <what>; allowed: <what>``),
1 refused or failed (a precheck, a phase that does not allow the command, an engine error).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from components.migrate.phases import Phase

SUBCOMMANDS = ("plan", "start", "status", "pause", "resume", "verify", "cutover", "rollback",
               "finalize", "abort")
_HELP = {
    "plan": "dry run: prechecks, size and time estimates, the rollback plan",
    "start": "run in the foreground until finalized or aborted (Ctrl-C pauses; start resumes)",
    "status": "phase, counts, lag, mismatches",
    "pause": "pause the runner (it keeps its place)",
    "resume": "let a paused runner go on",
    "verify": "compare the two sides now (row counts and per-chunk hashes)",
    "cutover": "drain, verify, set sequences, fence the source, start reverse sync",
    "rollback": "after cutover: drain back, verify, make the source writable again",
    "finalize": "drop replication both ways; no rollback after this",
    "abort": "before cutover: drop everything made on the source; it is left as it was",
}


def _positive(value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        f = -1.0
    if not 0 < f <= 3600:
        raise argparse.ArgumentTypeError(f"{value!r}; allowed: seconds in (0, 3600]")
    return f


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    mig = sub.add_parser("migrate", parents=[common], help="zero-downtime data migration",
                         description="Move a database to another one while the application "
                                     "runs (PostgreSQL -> PostgreSQL for now).")
    msub = mig.add_subparsers(dest="migrate_command", required=True)
    for name in SUBCOMMANDS:
        p = msub.add_parser(name, parents=[common], help=_HELP[name], description=_HELP[name])
        p.add_argument("--id", required=True, help="migration id: lowercase letters, digits, _")
        p.add_argument("--source", required=True, help="postgresql:// or mysql://"
                       "USER:PASSWORD@HOST:PORT/DB")
        p.add_argument("--target", required=True, help="postgresql:// or mysql://"
                       "USER:PASSWORD@HOST:PORT/DB")
        p.add_argument("--state", default=None,
                       help="state store: sqlite:///PATH (default sqlite:///.standby/"
                            "migrate.sqlite, under the current directory) or "
                            "dynamodb://TABLE?region=REGION[&endpoint_url=URL]")
        p.add_argument("--json", action="store_true", help="print one JSON document")
        if name in ("cutover", "rollback"):
            p.add_argument("--writes-stopped", action="store_true",
                           help="the caller has stopped the application's writes "
                                "(required until --stack is built)")
            p.add_argument("--stack", default=None,
                           help="use the stack's wrapper freeze and data pointer (not built "
                                "yet: use --writes-stopped)")
            p.add_argument("--max-freeze-s", type=_positive, default=5.0,
                           help="longest drain + verify while writes are stopped (default 5)")
        if name == "start":
            p.add_argument("--until", choices=("verify",), default=None,
                           help="return once ready for cutover (verified, no mismatches)")
            p.add_argument("--max-s", type=_positive, default=None,
                           help="stop (and keep the place) after this many seconds")
        if name in ("start", "cutover", "rollback", "finalize", "abort", "verify", "pause",
                    "resume"):
            p.add_argument("--lease-s", type=_positive, default=15.0, help=argparse.SUPPRESS)
            p.add_argument("--poll-s", type=_positive, default=1.0, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from components.migrate import (
        MigrationError,
        PreflightFailed,
        StateError,
        TransitionError,
        UrlError,
        make_adapter,
        open_migration,
    )
    from components.migrate.urls import endpoint, migration_id, state_url

    cmd = args.migrate_command
    try:
        migration_id(args.id)
        endpoint(args.source, "--source")
        endpoint(args.target, "--target")
        state_url(args.state)
        if getattr(args, "stack", None) is not None:
            raise UrlError(f"--stack {args.stack!r}: the wrapper freeze is not built yet; "
                           "allowed: --writes-stopped after stopping the application's writes")
        if cmd == "plan":
            adapter = make_adapter(args.id, args.source, args.target)
            try:
                plan = adapter.plan()
            finally:
                adapter.close()
            _print(args, plan, _plan_text(plan))
            return 0 if plan["ok"] else 1
        m = open_migration(args.id, args.source, args.target, args.state,
                           lease_s=getattr(args, "lease_s", 15.0),
                           poll_s=getattr(args, "poll_s", 1.0),
                           create=cmd == "start",
                           on_progress=None if args.json else _bar())
    except (UrlError, StateError) as exc:  # a bad value, an unknown id, other endpoints
        print(f"standby: error: {exc}", file=sys.stderr)
        return 2
    except MigrationError as exc:
        print(f"standby: error: {exc}", file=sys.stderr)
        return 1
    try:
        if cmd == "status":
            doc = m.status()
        elif cmd == "start":
            try:
                m.run(until=Phase.VERIFY if args.until else None, max_s=args.max_s,
                      wait_lease=True)
            except KeyboardInterrupt:
                m.command("pause")
                print("\nstandby: paused; run `standby migrate start` again to resume",
                      file=sys.stderr)
                return 130
            doc = m.status()
        else:
            extra: dict[str, Any] = {}
            if cmd in ("cutover", "rollback"):
                extra = {"writes_stopped": args.writes_stopped,
                         "max_freeze_s": args.max_freeze_s}
            doc = m.command(cmd, **extra)
            doc = m.status()
    except PreflightFailed as exc:
        print(f"standby: refused: {exc}", file=sys.stderr)
        return 1
    except (MigrationError, TransitionError, StateError) as exc:  # LeaseHeld is a StateError
        print(f"standby: refused: {exc}", file=sys.stderr)
        return 1
    finally:
        m.adapter.close()
    _print(args, doc, _status_text(doc))
    return 0


def _print(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n" if args.json else text)


def _plan_text(plan: dict[str, Any]) -> str:
    out = [f"plan ({plan['engine']}): {'ready' if plan['ok'] else 'REFUSED'}", "", "checks:"]
    out += [f"  {'ok ' if c['ok'] else 'NO '} {c['name']}: {c['detail']}" for c in plan["checks"]]
    out += ["", "tables:"]
    out += [f"  {t['table']}: ~{t['rows_estimate']} rows, {t['bytes']} bytes, key "
            f"({', '.join(t['key']) or 'whole row'})" for t in plan["tables"]]
    est = plan["estimate"]
    out += ["", f"sequences: {', '.join(plan['sequences']) or '-'}",
            f"estimate: {est['rows']} rows, {est['bytes']} bytes, copy ~{est['copy_seconds']} s "
            f"({est['basis']})", "", "rollback plan:"]
    out += [f"  - {r}" for r in plan["rollback"]]
    return "\n".join(out) + "\n"


def _status_text(doc: dict[str, Any]) -> str:
    c, lag = doc["counts"], doc["lag"]
    out = [f"migration {doc['id']} ({doc['engine']}): {doc['source']} -> {doc['target']}",
           f"phase      {doc['phase']}{' (paused)' if doc['paused'] else ''}"
           f"{'  runner ' + doc['runner'] if doc['runner'] else ''}",
           f"rows       source {'' if c.get('from') == 'verify' else '~'}{c['rows_source']} "
           f"target {c['rows_target']} ({'last verify' if c.get('from') == 'verify' else 'copy'})"
           f", tables {c['tables_ready']}/{c['tables']} ready",
           f"lag        {lag['bytes']} bytes (applied {lag['applied']})",
           f"mismatches {doc['mismatches'] if doc['mismatches'] is not None else 'not verified'}"]
    if doc.get("last_cutover"):
        out.append(f"cutover    {doc['last_cutover']}")
    return "\n".join(out) + "\n"


def _bar() -> Any:
    state = {"shown": 0.0}
    tty = sys.stderr.isatty()

    def show(p: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - state["shown"] < (0.2 if tty else 2.0):
            return
        state["shown"] = now
        total, done = p.get("rows_source") or 0, p.get("rows_target") or 0
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        eta = p.get("eta_s")
        line = f"[{p.get('phase')}] "
        if p.get("phase") == "backfill":
            line += (f"rows {done}/~{total or '?'}{pct} {p.get('rate_rows_s', 0) or 0} rows/s "
                     f"ETA {'-' if eta is None else f'{eta:.0f}s'} ")
        line += f"lag {p.get('lag_bytes', '-')} B throttle {p.get('throttle') or 'none'}"
        print(("\r" + line + "\x1b[K") if tty else line, end="" if tty else "\n",
              file=sys.stderr, flush=True)

    return show
