"""The strict YAML loader for project and stack files (``components.stackfile``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.errors import StackFileError
from components.stackfile import MAX_ALIASES, MAX_DEPTH, load, loads


def test_plain_json_values_load_as_yaml_1_2_reads_them() -> None:
    doc = loads("a: 1\nb: [1.5, 1e3, -0, true, false, null, ~, text, 'yes', \"010\"]\n"
                "c: {d: {e: x}}\n")
    assert doc == {"a": 1, "b": [1.5, 1000.0, 0, True, False, None, None, "text", "yes",
                                 "010"], "c": {"d": {"e": "x"}}}


def test_a_few_aliases_are_expanded() -> None:
    assert loads("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize(("text", "message"), [
    ("a: 1\na: 2\n", "a (line 2): duplicate key"),
    ("a: {b: 1, b: 1}\n", "a.b (line 1): duplicate key"),
    ("? [1]\n: x\n", "key 'a sequence' is not a string"),
    ("a: 2024-01-01\n", "a (line 1): '2024-01-01' is a date/time; quote it"),
    ("a: 2024-01-01T10:00:00Z\n", "is a date/time; quote it"),
    ("a: no\n", "'no' is true/false in YAML 1.1 but text in YAML 1.2 (Pulumi)"),
    ("a: 0755\n", "'0755' is a number YAML 1.1 and YAML 1.2 (Pulumi) read differently"),
    ("a: 1:30\n", "'1:30' is a number YAML 1.1"),
    ("a: !!binary aGk=\n", "YAML binary (!!binary) is not allowed"),
    ("a: !!set {x}\n", "a YAML set (!!set) is not allowed"),
    ("a: !!python/object:os.system x\n", "the YAML tag 'tag:yaml.org,2002:python/object:os.system' is not allowed"),  # noqa: E501
    ("a: .nan\n", "'.nan' is not a finite number"),
    ("a: -.inf\n", "'-.inf' is not a finite number"),
    ("a: 123456789012345678901\n", "is not an integer in"),
    ("a: \"nul\\0\"\n", "contains the control character or lone surrogate U+0000"),
    ("a: \"\\ud800\"\n", "lone surrogate U+D800"),
    ("a: &r [*r]\n", "(a recursive alias?)"),
    ("a: {b: 1\n", "not valid YAML"),
    ("a: 1\n---\nb: 2\n", "not valid YAML"),
])
def test_refusals_name_the_path_and_what_to_do(text: str, message: str) -> None:
    with pytest.raises(StackFileError) as info:
        loads(text, "stack.yaml")
    assert str(info.value).startswith("stack.yaml: ")
    assert message in str(info.value)


def test_depth_and_alias_caps() -> None:
    with pytest.raises(StackFileError, match=f"nested more than {MAX_DEPTH} levels deep"):
        loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)) is not None
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(StackFileError, match=f"more than {MAX_ALIASES} aliases"):
        loads(text)


def test_billion_laughs_stops_at_the_node_budget() -> None:
    text = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n"
        for i in range(9))
    with pytest.raises(StackFileError, match="expands to more than 100000 values"):
        loads(text)


def test_files_not_utf8_too_large_or_with_a_bom(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(StackFileError, match=r"line 2: not UTF-8 \(byte 0xe9 at offset 11\)"):
        load(bad)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: '" + b"x" * (1024 * 1024) + b"'\n")
    with pytest.raises(StackFileError, match="larger than 1048576 bytes"):
        load(big)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfa: 1\n")
    assert load(bom) == {"a": 1}
    with pytest.raises(StackFileError, match="cannot read"):
        load(tmp_path / "missing.yaml")
