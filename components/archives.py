"""Function archives, for every cloud: the run-time package (and the user's logic code)
zipped deterministically, so a deploy changes a function only when its code changed.
Deploy-time only (imports pulumi); the run time never imports this module."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from pathlib import Path

import pulumi

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
PACKAGE_INIT = Path(__file__).resolve().parent / "__init__.py"

#: Fixed zip metadata: the archive's bytes depend on file names and contents only, so
#: ``pulumi up`` redeploys a function only when its code changed (never because a test run
#: left ``__pycache__`` behind or a checkout touched the timestamps).
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_MODE = 0o100644
_SKIP_DIRS = ("__pycache__",)
_SKIP_SUFFIXES = (".pyc", ".pyo")


def _tree(root: Path, prefix: str) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(p in _SKIP_DIRS or p.startswith(".") for p in rel.parts):
            continue
        if path.is_file() and path.suffix not in _SKIP_SUFFIXES:
            out.append((f"{prefix}{rel.as_posix()}", path))
    return out


def zip_bytes(entries: list[tuple[str, Path]]) -> bytes:
    """A zip of ``(name in archive, file)``: sorted, fixed timestamp and mode, no bytecode."""
    names = [name for name, _ in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"archive: the same path twice: {', '.join(dupes)}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, path in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = ZIP_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, whatever the build machine is
            zf.writestr(info, path.read_bytes(), compresslevel=9)
    return buf.getvalue()


def _runtime_entries() -> list[tuple[str, Path]]:
    # Only ``components/__init__.py`` (lazy, imports nothing) and ``components/runtime``: the
    # run-time code never imports ``pulumi``.
    return [("components/__init__.py", PACKAGE_INIT), *_tree(RUNTIME_DIR, "components/runtime/")]


def file_archive(data: bytes) -> pulumi.FileArchive:
    # Content-addressed, so concurrent programs and tests never see a half-written zip.
    out_dir = Path(tempfile.gettempdir()) / "standby-archives"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{hashlib.sha256(data).hexdigest()}.zip"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return pulumi.FileArchive(str(path))


def runtime_zip() -> bytes:
    """The bytes of the wrapper and monitor functions' code."""
    return zip_bytes(_runtime_entries())


def logic_zip(code_dir: Path) -> bytes:
    """The user's logic code plus the run-time package, so ``from
    components.runtime.aws.data_client import from_env`` works in the function."""
    entries = _runtime_entries()
    for name, path in _tree(code_dir, ""):
        if name.split("/")[0] != "components":
            entries.append((name, path))
    return zip_bytes(entries)


def runtime_archive() -> pulumi.FileArchive:
    return file_archive(runtime_zip())


def logic_archive(code_dir: Path) -> pulumi.FileArchive:
    return file_archive(logic_zip(code_dir))


