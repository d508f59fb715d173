"""The run-time subpackage is zipped into cloud functions: it must not need pulumi."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_runtime_imports_without_pulumi() -> None:
    code = (
        "import sys\n"
        "sys.modules['pulumi'] = None  # any import of pulumi now raises ImportError\n"
        "sys.modules['pulumi_aws'] = None\n"
        "sys.modules['pydantic'] = None\n"
        "import components.runtime, components, pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(components.runtime.__path__, 'components.runtime.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'pulumi' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_runtime_sources_never_mention_pulumi_imports() -> None:
    for path in (ROOT / "components" / "runtime").rglob("*.py"):
        text = path.read_text()
        assert "import pulumi" not in text and "from pulumi" not in text, path


def test_core_modules_never_import_a_cloud_adapter() -> None:
    """Issue 10 (cloud-neutral core): the modules directly in ``components/runtime/`` are
    shared by every cloud, so none of them may import a cloud adapter package."""
    import ast

    adapters = {p.name for p in (ROOT / "components" / "runtime").iterdir()
                if p.is_dir() and (p / "__init__.py").is_file()}
    assert "aws" in adapters
    offenders = []
    for path in sorted((ROOT / "components" / "runtime").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names
                          if any(n.startswith(f"components.runtime.{a}") for a in adapters)]
    assert offenders == [], f"core modules importing a cloud adapter: {offenders}"
