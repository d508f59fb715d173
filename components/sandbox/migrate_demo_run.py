"""What the ``standby migrate`` demos share (README "Migrating data"): the arguments, the
URLs written to ``DIR/env``, an application writer on the source for ``--write-seconds``,
then holding the servers until Ctrl-C, SIGTERM or ``--hold-seconds`` and closing them.

Each demo module says how to start its two servers and how to write once
(``migrate_demo`` for PostgreSQL, ``migrate_demo_mysql`` for MariaDB).
"""

from __future__ import annotations

import argparse
import random
import shlex
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: One application write: ``(rng, highest initial row id, write number)``.
WriteOnce = Callable[[random.Random, int, int], None]


class Closable(Protocol):
    def close(self) -> None: ...


@dataclass
class Demo:
    source: str
    target: str
    writer: Callable[[], AbstractContextManager[WriteOnce]]
    """Opens the application's connection to the source; yields one write."""


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the servers as Ctrl-C does


def run(prog: str, doc: str | None, default_dir: str, argv: list[str] | None,
        ensure: Callable[[Callable[[str], None]], object],
        setup: Callable[[argparse.Namespace, list[Closable]], Demo]) -> int:
    """``setup`` starts the servers, appends each to the list as soon as it exists (so a
    failure half-way still closes it), fills the source and returns the URLs and writer."""
    ap = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0] if doc else None)
    ap.add_argument("--dir", type=Path, default=Path(default_dir))
    ap.add_argument("--rows", type=int, default=100_000, choices=range(1, 10_000_001),
                    metavar="1..10000000")
    ap.add_argument("--write-seconds", type=float, default=40.0)
    ap.add_argument("--hold-seconds", type=float, default=3600.0)
    args = ap.parse_args(argv)
    ensure(lambda m: print(m, file=sys.stderr))
    args.dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    servers: list[Closable] = []
    try:
        demo = setup(args, servers)
        env = args.dir / "env"
        env.write_text(f"SOURCE={shlex.quote(demo.source)}\n"
                       f"TARGET={shlex.quote(demo.target)}\n")
        env.chmod(0o600)
        print(f"source and target up; URLs in {env} (source it: . {env})", flush=True)
        rng, n, errors = random.Random(7), 0, 0
        end = time.monotonic() + args.write_seconds
        with demo.writer() as write_once:
            while time.monotonic() < end:
                try:
                    write_once(rng, args.rows, n)
                    n += 1
                except Exception as exc:
                    errors += 1
                    print(f"write error: {exc}", file=sys.stderr)
                time.sleep(0.002)
        print(f"writes stopped after {n} writes ({errors} errors); holding the servers "
              "(Ctrl-C stops them)", flush=True)
        time.sleep(args.hold_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        for s in servers:
            s.close()
        print("servers stopped", flush=True)
    return 0
