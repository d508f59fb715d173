"""Function packages laid out from the archives the program registers."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pulumi
import pytest

from components.sandbox.package import PackageError, content_hash, materialize, zip_bytes


def test_an_asset_archive_is_laid_out_as_pulumi_would_zip_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg" / "sub").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("")
    (src / "pkg" / "sub" / "mod.py").write_text("X = 1\n")
    zipped = tmp_path / "layer.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("python/driver.py", "Y = 2\n")
    archive = pulumi.AssetArchive({
        "main.py": pulumi.StringAsset("def handler(e, c):\n    return 1\n"),
        "lib": pulumi.FileArchive(str(src)),
        "vendor": pulumi.FileArchive(str(zipped)),
        "README": pulumi.FileAsset(str(src / "pkg" / "sub" / "mod.py")),
    })
    out = materialize(archive, tmp_path / "cache")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["README", "lib/pkg/__init__.py", "lib/pkg/sub/mod.py", "main.py",
                     "vendor/python/driver.py"]
    assert (out / "vendor/python/driver.py").read_text() == "Y = 2\n"
    assert materialize(archive, tmp_path / "cache") == out  # cached by content
    (src / "pkg" / "sub" / "mod.py").write_text("X = 3\n")
    assert materialize(archive, tmp_path / "cache") != out  # new content, new folder


def test_the_zip_lambda_receives_is_the_same_bytes_for_the_same_code(tmp_path: Path) -> None:
    a = pulumi.AssetArchive({"b.py": pulumi.StringAsset("b"), "a.py": pulumi.StringAsset("a")})
    b = pulumi.AssetArchive({"a.py": pulumi.StringAsset("a"), "b.py": pulumi.StringAsset("b")})
    assert zip_bytes(a) == zip_bytes(b)
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash(pulumi.AssetArchive({"a.py": pulumi.StringAsset("x")}))


def test_unsupported_or_missing_code_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="RemoteArchive cannot be laid out; allowed"):
        materialize(pulumi.RemoteArchive("https://example.com/x.zip"), tmp_path)
    with pytest.raises(PackageError, match="no such file"):
        materialize(pulumi.AssetArchive({"m.py": pulumi.FileAsset(str(tmp_path / "nope"))}),
                    tmp_path)
    with pytest.raises(PackageError, match="escapes the package"):
        materialize(pulumi.AssetArchive({"../evil.py": pulumi.StringAsset("x")}),
                    tmp_path / "cache")
    assert not (tmp_path / "evil.py").exists()
