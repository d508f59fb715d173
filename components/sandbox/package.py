"""The exact code a function is deployed with: a Pulumi archive from the plan, unpacked.

The program registers ``pulumi.AssetArchive`` / ``FileArchive`` / ``FileAsset`` /
``StringAsset`` objects as a function's ``code`` (and a layer's ``code``); under mocks they
arrive in the registration inputs as those objects. This module lays them out as Pulumi
would zip them (an AssetArchive maps a path in the archive to an asset or a nested archive;
a directory archive holds every file under it), into a cache folder named by the content
hash, so every invocation runs those files and nothing else.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi


class PackageError(Exception):
    """The archive cannot be laid out (unknown asset kind, missing file)."""


def _files(archive: Any, prefix: str = "") -> Iterator[tuple[str, bytes]]:
    """Yield (path inside the archive, bytes) for every file, in a stable order."""
    if isinstance(archive, pulumi.AssetArchive):
        for key in sorted(archive.assets):
            yield from _files(archive.assets[key], f"{prefix}{key}")
        return
    if isinstance(archive, pulumi.FileAsset):
        path = Path(str(archive.path))
        if not path.is_file():
            raise PackageError(f"FileAsset {path}: no such file")
        yield prefix, path.read_bytes()
        return
    if isinstance(archive, pulumi.StringAsset):
        yield prefix, str(archive.text).encode()
        return
    if isinstance(archive, pulumi.FileArchive):
        path = Path(str(archive.path))
        base = f"{prefix}/" if prefix else ""
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for n in sorted(names):
                    f = Path(root) / n
                    yield base + f.relative_to(path).as_posix(), f.read_bytes()
            return
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for info in sorted(z.infolist(), key=lambda i: i.filename):
                    if not info.is_dir():
                        yield base + info.filename, z.read(info)
            return
        if path.is_file() and tarfile.is_tarfile(path):
            with tarfile.open(path) as t:
                for member in sorted(t.getmembers(), key=lambda m: m.name):
                    data = t.extractfile(member) if member.isfile() else None
                    if data is not None:
                        yield base + member.name, data.read()
            return
        raise PackageError(f"FileArchive {path}: not a directory, zip or tar file")
    raise PackageError(
        f"code: {type(archive).__name__} cannot be laid out; allowed: AssetArchive, "
        "FileArchive (directory, zip, tar), FileAsset, StringAsset"
    )


def content_hash(archive: Any) -> str:
    h = hashlib.sha256()
    for name, data in _files(archive):
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:20]


def materialize(archive: Any, cache_root: Path) -> Path:
    """Unpack ``archive`` into ``cache_root/<content hash>`` (once) and return that folder."""
    dest = cache_root / content_hash(archive)
    if dest.is_dir():
        return dest
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_root, prefix=".unpack-"))
    try:
        for name, data in _files(archive):
            target = tmp / name
            if not target.resolve().is_relative_to(tmp.resolve()):
                raise PackageError(f"archive path {name!r} escapes the package")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        try:
            tmp.rename(dest)  # atomic: concurrent invocations see all of it or none
        except OSError:
            if not dest.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def zip_bytes(archive: Any) -> bytes:
    """The archive as the zip file Lambda receives (fixed timestamps: same code, same bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in _files(archive):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return buf.getvalue()
