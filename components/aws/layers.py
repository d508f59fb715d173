"""The drivers layer: the SQL drivers the wrapper and the SQL data monitor need on Lambda.

The Lambda Python runtime holds the standard library and boto3 only, so psycopg and PyMySQL
come from a layer built at deploy time from PyPI wheels for the function's platform and
architecture (``components/runtime/layer-requirements.txt``), never from the machine that
runs ``pulumi up``: a macOS laptop's psycopg build would not load on Amazon Linux.

The zip is deterministic (sorted entries, fixed timestamps and modes, no byte code), so its
hash changes only when the wheels do, and an unchanged layer is never re-published. It is
cached under ``<project>/.standby-cache/layers/<key>.zip``, the key hashing the requirements
file, the platform and the Python version: the second ``pulumi up`` or ``standby plan`` does
not call pip. Delete the folder to pick up newer driver releases within the pinned ranges.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.archives import RUNTIME_DIR
from components.aws._common import PACKAGE, RUNTIME_PYTHON

REQUIREMENTS = RUNTIME_DIR / "layer-requirements.txt"
CACHE_DIR = Path(".standby-cache") / "layers"
#: Lambda architecture -> the wheel platform tag pip installs for. manylinux2014 (glibc 2.17)
#: wheels load on Amazon Linux 2023, the OS of the python3.12 runtime (glibc 2.34).
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
#: Bump when the zip layout changes, so old cache entries are not reused.
LAYOUT_VERSION = "1"
#: The earliest time a zip entry can carry; any fixed value makes the bytes reproducible.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
PIP_TIMEOUT_S = 600

#: Runs one pip command line; raises on failure. Swappable so a test can count the calls.
Runner = Callable[[list[str]], None]


class LayerBuildError(RuntimeError):
    """pip could not produce the drivers layer; the message says what to check."""


@dataclass(frozen=True)
class LayerBuild:
    path: Path
    sha256_b64: str
    """Base64 SHA-256 of the zip: Lambda's ``source_code_hash`` form."""
    from_cache: bool


def python_version(runtime: str = RUNTIME_PYTHON) -> str:
    """``python3.12`` -> ``3.12``."""
    if not runtime.startswith("python"):
        raise ValueError(f"runtime {runtime!r} is not a Lambda Python runtime like python3.12")
    return runtime.removeprefix("python")


def cache_key(requirements: bytes, arch: str, py_version: str) -> str:
    platform = _platform(arch)
    h = hashlib.sha256()
    for part in (LAYOUT_VERSION.encode(), platform.encode(), py_version.encode(), requirements):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _platform(arch: str) -> str:
    try:
        return PLATFORMS[arch]
    except KeyError:
        raise ValueError(
            f"architecture {arch!r} has no drivers layer; allowed: {', '.join(PLATFORMS)}"
        ) from None


def _run_pip(cmd: list[str]) -> None:
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise LayerBuildError(f"pip did not finish within {PIP_TIMEOUT_S} s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise LayerBuildError(f"pip exited {done.returncode}:\n{tail}")


def pip_command(target: Path, requirements: Path, arch: str, py_version: str) -> list[str]:
    return [
        sys.executable, "-m", "pip", "install",
        "--only-binary", ":all:",
        "--platform", _platform(arch),
        "--python-version", py_version,
        "--implementation", "cp",
        "--target", str(target),
        "--no-compile",  # byte code would differ per build and Lambda compiles on import
        "--no-input",
        "--disable-pip-version-check",
        "--quiet",
        "-r", str(requirements),
    ]


def write_deterministic_zip(src: Path, dest: Path, prefix: str = "python") -> None:
    """Zip ``src`` under ``prefix/`` with sorted names, a fixed timestamp and fixed modes."""
    files: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(src):
        rel_root = Path(root).relative_to(src)
        # Console scripts carry this machine's interpreter path in their shebang, and the
        # layer's python/ folder is an import path only, so bin/ is neither needed nor stable.
        dirs[:] = sorted(d for d in dirs if d != "__pycache__"
                         and not (rel_root == Path(".") and d == "bin"))
        for n in names:
            if n.endswith(".pyc"):
                continue
            files.append(((rel_root / n).as_posix(), Path(root) / n))
    files.sort()
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, path in files:
            info = zipfile.ZipInfo(f"{prefix}/{rel}", date_time=ZIP_EPOCH)
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the modes above are honoured
            zf.writestr(info, path.read_bytes())


def build_drivers_layer(
    cache_dir: Path,
    arch: str = "x86_64",
    py_version: str | None = None,
    requirements: Path = REQUIREMENTS,
    runner: Runner | None = None,
) -> LayerBuild:
    """The drivers layer zip for ``arch``, from the cache or built with pip into it."""
    version = py_version or python_version()
    key = cache_key(requirements.read_bytes(), arch, version)
    dest = cache_dir / f"{key}.zip"
    if dest.is_file():
        return LayerBuild(dest, _b64sha(dest), from_cache=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _ignore_cache_root(cache_dir)
    with tempfile.TemporaryDirectory(prefix="standby-layer-", dir=cache_dir) as tmp:
        target = Path(tmp) / "site"
        try:
            (runner or _run_pip)(pip_command(target, requirements, arch, version))
        except LayerBuildError as exc:
            raise LayerBuildError(
                f"drivers layer ({requirements.name}, {_platform(arch)}, Python {version}) "
                f"could not be built from PyPI wheels: {exc}\nCheck that PyPI is reachable "
                "and that every requirement publishes a wheel for this platform."
            ) from None
        if not target.is_dir() or not any(target.iterdir()):
            raise LayerBuildError(f"pip installed nothing from {requirements}")
        partial = Path(tmp) / "layer.zip"
        write_deterministic_zip(target, partial)
        # Atomic: a concurrent or interrupted build never leaves a half-written cache entry.
        os.replace(partial, dest)
    return LayerBuild(dest, _b64sha(dest), from_cache=False)


def _b64sha(path: Path) -> str:
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def _ignore_cache_root(cache_dir: Path) -> None:
    """Keep the cache out of git without asking the user to edit their .gitignore."""
    root = cache_dir.parent if cache_dir.name == "layers" else cache_dir
    marker = root / ".gitignore"
    if not marker.exists():
        marker.write_text("*\n")


class DriversLayer(pulumi.ComponentResource):
    """One ``LayerVersion`` per region, all from the same cached zip."""

    arns: dict[str, pulumi.Output[str]]
    build: LayerBuild

    def __init__(
        self,
        name: str,
        topology: str,
        regions: list[str],
        providers: dict[str, aws.Provider],
        project_dir: Path,
        arch: str = "x86_64",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{PACKAGE}:aws:DriversLayer", name, None, opts)
        self.build = build_drivers_layer(project_dir / CACHE_DIR, arch)
        self.arns = {}
        for region in regions:
            layer = aws.lambda_.LayerVersion(
                f"{name}-{region}",
                layer_name=f"{topology}-sql-drivers",
                description="psycopg and PyMySQL for the standby wrapper and data monitor",
                code=pulumi.FileArchive(str(self.build.path)),
                source_code_hash=self.build.sha256_b64,
                compatible_runtimes=[RUNTIME_PYTHON],
                compatible_architectures=[arch],
                opts=pulumi.ResourceOptions(parent=self, provider=providers[region]),
            )
            self.arns[region] = layer.arn
        self.register_outputs({"zip": str(self.build.path)})
