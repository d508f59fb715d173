"""The drivers layer as this machine can run it.

The plan's drivers layer (``components/aws/layers.py``) holds wheels for Lambda's Python
(python3.12, manylinux). The sandbox runs functions on this machine's interpreter, which
may be another version: a psycopg-binary built for CPython 3.12 does not load on 3.11. So a
layer that is the drivers build is replaced, for the runner only, by the same builder's
output for the same requirements and architecture and this interpreter's version (moto
still holds the layer the plan registered). Every other layer runs as registered. A
function without the layer still finds no driver: the runner's interpreter sees only the
function's package, its layers and boto3.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pulumi

from components.aws.layers import REQUIREMENTS, build_drivers_layer, cache_key, python_version


def local_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def runnable_layer(code: Any, architectures: list[str]) -> Any:
    """``code``, or the drivers layer built for this interpreter when ``code`` is the
    drivers layer built for Lambda's."""
    if not isinstance(code, pulumi.FileArchive):
        return code
    path = Path(str(code.path))
    arch = architectures[0] if architectures else "x86_64"
    try:
        key = cache_key(REQUIREMENTS.read_bytes(), arch, python_version())
    except ValueError:
        return code
    if path.name != f"{key}.zip" or python_version() == local_python():
        return code
    build = build_drivers_layer(path.parent, arch, py_version=local_python())
    return pulumi.FileArchive(str(build.path))
