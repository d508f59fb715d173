"""A bounded, strict YAML loader for Pulumi project and stack files.

``yaml.safe_load`` is the wrong tool for a file a CLI reads on a user's behalf:

- aliases are shared, not copied, so a "billion laughs" document loads fast and then hangs
  whatever walks it (``json.dumps``, pydantic);
- its composer recurses once per nesting level, so 20,000 ``[`` raise ``RecursionError``;
- it keeps the last of two duplicate keys without a word;
- it builds ``datetime``, ``bytes``, ``set`` and non-string keys, which the spec cannot
  take, and YAML 1.1 reads ``no``, ``on``, ``010`` and ``1:20`` differently from Pulumi,
  whose Go YAML follows the 1.2 core schema.

So this loader composes with a resolver of the YAML 1.2 core schema, refuses the plain
scalars that YAML 1.1 reads otherwise ("quote it"), caps the file size, the nesting depth,
the alias count and the expanded size, and builds only JSON values itself. Every refusal is a
``StackFileError`` naming the file, the line and the path of the value.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from components.errors import StackFileError

#: A stack file with a large topology is a few KB; 1 MiB leaves room and bounds the parse.
MAX_FILE_BYTES = 1024 * 1024
#: The spec nests about 6 levels under ``config``; 32 leaves room for user env maps.
MAX_DEPTH = 32
#: Aliases are legal YAML and occasionally handy; hundreds are not needed in a stack file.
MAX_ALIASES = 100
#: Values after aliases are expanded; a billion-laughs document passes this in microseconds.
MAX_NODES = 100_000
#: JSON numbers a spec can use; larger integers are refused rather than rounded by Pulumi.
MAX_INT = 2**63 - 1

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
#: Plain scalars that YAML 1.1 (PyYAML) and YAML 1.2 (Pulumi) read differently.
_AMBIGUOUS = "tag:standby,ambiguous"

_TAG_WORDS = {
    "tag:yaml.org,2002:timestamp": "a YAML date/time",
    "tag:yaml.org,2002:binary": "YAML binary (!!binary)",
    "tag:yaml.org,2002:set": "a YAML set (!!set)",
    "tag:yaml.org,2002:omap": "a YAML ordered map (!!omap)",
    "tag:yaml.org,2002:pairs": "YAML pairs (!!pairs)",
    "tag:yaml.org,2002:merge": "a YAML merge key (<<)",
}
_BAD_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_TIMESTAMP = re.compile(r"\d{4}-\d{1,2}-\d{1,2}([Tt ]|$)")


class _Resolver(BaseResolver):
    """The YAML 1.2 core schema, plus a tag for the YAML 1.1-only spellings."""


# The YAML 1.1-only spellings come first: the first matching resolver wins, and "010" or
# "1_000" would otherwise read as 1.2 numbers that PyYAML and Pulumi disagree on.
for _tag, _rx in (
    (_AMBIGUOUS, r"yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N"),
    (_AMBIGUOUS, r"[-+]?0[0-9_]+(\.[0-9_]*)?|[-+]?0[bBoOxX][0-9a-fA-F_]+"),
    (_AMBIGUOUS, r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?"),
    (_AMBIGUOUS, r"[-+]?[0-9][0-9]*_[0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?"),
    (_AMBIGUOUS, r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?"),
    (_AMBIGUOUS, r"<<"),
    (_BOOL, r"true|True|TRUE|false|False|FALSE"),
    (_NULL, r"~|null|Null|NULL|"),
    (_INT, r"[-+]?(0|[1-9][0-9]*)"),
    (_FLOAT, r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"),
    (_FLOAT, r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"),
):
    _Resolver.add_implicit_resolver(_tag, re.compile(rf"^(?:{_rx})$"), None)


class _Loader(Reader, Scanner, Parser, Composer, _Resolver):
    """Composes nodes only (no Python objects), with depth and alias caps on the way."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _Resolver.__init__(self)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _Refused(f"line {mark.line + 1}: more than {MAX_ALIASES} aliases (*name); "
                               f"allowed: at most {MAX_ALIASES}")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _Refused(f"line {mark.line + 1}: nested more than {MAX_DEPTH} levels deep; "
                           f"allowed: at most {MAX_DEPTH}")
        try:
            node: Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1


class _Refused(Exception):
    """A cap or rule broken while composing; becomes a StackFileError with the file name."""


def read_text(path: Path) -> str:
    """The file's text: at most ``MAX_FILE_BYTES`` bytes of UTF-8 (a BOM is allowed)."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise StackFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise StackFileError(f"{path}: larger than {MAX_FILE_BYTES} bytes; "
                             f"allowed: at most {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise StackFileError(
            f"{path}: line {line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); allowed: UTF-8 text (re-save the file as UTF-8)"
        ) from None


def load(path: Path) -> Any:
    """Parse one YAML document into JSON values (dict, list, str, int, float, bool, None)."""
    return loads(read_text(path), str(path))


def loads(text: str, where: str = "<yaml>") -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except _Refused as exc:
        raise StackFileError(f"{where}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}: " if mark is not None else ""
        raise StackFileError(f"{where}: {at}not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise StackFileError(f"{where}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if node is None:
        return None
    return _Builder(where).build(node, "", 0)


class _Builder:
    """Builds JSON values from nodes, expanding aliases under a node budget."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.nodes = 0

    def fail(self, node: Node, path: str, what: str) -> StackFileError:
        at = f" (line {node.start_mark.line + 1})"
        shown = path if len(path) <= 160 else path[:150] + "..."
        return StackFileError(f"{self.where}: {shown or 'the document'}{at}: {what}")

    def text(self, node: Node, path: str, value: str) -> str:
        bad = _BAD_CHAR.search(value)
        if bad is not None:
            raise self.fail(node, path, f"contains the control character or lone surrogate "
                                        f"U+{ord(bad.group()):04X}; allowed: printable text, "
                                        "tabs and newlines")
        return value

    def build(self, node: Node, path: str, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(node, path, f"expands to more than {MAX_NODES} values (aliases "
                                        f"repeated too often?); allowed: at most {MAX_NODES}")
        if depth > MAX_DEPTH:  # an alias can point back into its own anchor
            raise self.fail(node, path, f"nested more than {MAX_DEPTH} levels deep "
                                        "(a recursive alias?)")
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                raise self._bad_tag(node, path)
            return [self.build(item, f"{path}[{i}]", depth + 1)
                    for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            if node.tag != _MAP:
                raise self._bad_tag(node, path)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.key(key_node, path)
                sub = f"{path}.{key}" if path else key
                if key in out:
                    raise self.fail(key_node, sub, "duplicate key; allowed: each key once "
                                                   "per mapping")
                out[key] = self.build(value_node, sub, depth + 1)
            return out
        raise self.fail(node, path, "not a YAML value")  # pragma: no cover

    def key(self, node: Node, path: str) -> str:
        if isinstance(node, ScalarNode) and node.tag == _STR:
            return self.text(node, path or "the document", str(node.value))
        shown = node.value if isinstance(node, ScalarNode) else f"a {getattr(node, 'id', 'node')}"
        where = path or "the document"
        if isinstance(node, ScalarNode) and node.tag == _AMBIGUOUS and node.value == "<<":
            raise self.fail(node, where, "merge keys (<<) are not supported; "
                                         "write the keys out")
        raise self.fail(node, where, f"key {shown!r} is not a string; allowed: string keys "
                                     "(quote it)")

    def scalar(self, node: ScalarNode, path: str) -> Any:
        value: str = node.value
        tag = node.tag
        if tag == _STR:
            return self.text(node, path, value)
        if tag == _AMBIGUOUS:
            if _TIMESTAMP.match(value):
                what = f"{value!r} is a date/time; quote it ('{value}')"
            elif value.lower() in ("yes", "no", "on", "off", "y", "n"):
                what = (f"{value!r} is true/false in YAML 1.1 but text in YAML 1.2 (Pulumi); "
                        f"write true/false, or quote it ('{value}') for text")
            else:
                what = (f"{value!r} is a number YAML 1.1 and YAML 1.2 (Pulumi) read "
                        f"differently; write a plain decimal number, or quote it ('{value}')")
            raise self.fail(node, path, what)
        if tag == _NULL:
            return None
        if tag == _BOOL:
            if value.lower() not in ("true", "false"):
                raise self.fail(node, path, f"{value!r} is not true or false")
            return value.lower() == "true"
        if tag == _INT:
            if not re.fullmatch(r"[-+]?[0-9]{1,19}", value) or abs(int(value)) > MAX_INT:
                raise self.fail(node, path, f"{value[:40]!r} is not an integer in "
                                            f"-{MAX_INT}..{MAX_INT}; quote it if it is text")
            return int(value)
        if tag == _FLOAT:
            try:
                number = float(value)
            except ValueError:  # .inf and .nan, or an explicit !!float on text
                number = math.nan
            if not math.isfinite(number):
                raise self.fail(node, path, f"{value[:40]!r} is not a finite number; allowed: "
                                            "JSON numbers (quote it if it is text)")
            return number
        raise self._bad_tag(node, path)

    def _bad_tag(self, node: Node, path: str) -> StackFileError:
        what = _TAG_WORDS.get(node.tag, f"the YAML tag {node.tag!r}")
        return self.fail(node, path, f"{what} is not allowed; allowed: strings, numbers, "
                                     "true/false, null, lists and mappings (quote it, or "
                                     "remove the tag)")



# --- Pulumi project and stack files ------------------------------------------------------

SECRET_PLACEHOLDER = "[secret]"

#: Pulumi: "stack names may only contain alphanumeric, hyphens, underscores, or periods",
#: at most 100 characters. A qualified ``org/project/stack`` does not name a local file.
STACK_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,100}")
STACK_NAME_HELP = "1-100 letters, digits, '-', '_' or '.' (the name in stacks/Pulumi.<stack>.yaml)"
#: Pulumi config keys are ``namespace:name``; a bare name gets the project's namespace.
CONFIG_KEY_RE = re.compile(r"([A-Za-z0-9_.-]{1,100}:)?[A-Za-z0-9_.-]{1,200}")
CONFIG_KEY_HELP = "namespace:name or name, of letters, digits, '-', '_' or '.'"


@dataclass
class StackConfig:
    project: str
    stack: str
    project_dir: Path
    path: Path
    config: dict[str, str]
    """Full key (``project:key``) -> value as Pulumi hands it to programs (objects as JSON)."""
    secret_keys: list[str]
    raw: dict[str, Any]
    """Full key -> parsed value (secure values replaced by the placeholder)."""


def check_stack_name(stack: str) -> str:
    if not isinstance(stack, str) or not STACK_NAME_RE.fullmatch(stack):
        shown = stack if len(str(stack)) <= 40 else f"{str(stack)[:40]}... ({len(stack)} chars)"
        raise StackFileError(f"--stack: {shown!r}; allowed: {STACK_NAME_HELP}")
    return stack


def find_project_dir(start: Path) -> Path:
    for d in (start, *start.parents):
        if (d / "Pulumi.yaml").is_file():
            return d
    raise StackFileError(f"no Pulumi.yaml in {start} or any parent directory; "
                         "allowed: run inside a Pulumi project or pass --project-dir")


def read_project(project_dir: Path) -> tuple[str, Path]:
    """The project name and the directory that holds its stack files."""
    project_file = project_dir / "Pulumi.yaml"
    doc = load(project_file)
    if not isinstance(doc, dict):
        raise StackFileError(f"{project_file}: expected a mapping at the top, got "
                             f"{_kind(doc)}")
    name = doc.get("name")
    if not isinstance(name, str) or not STACK_NAME_RE.fullmatch(name):
        raise StackFileError(f"{project_file}: name: {name!r}; allowed: a project name of "
                             "letters, digits, '-', '_' or '.'")
    config_dir = doc.get("stackConfigDir", ".")
    if not isinstance(config_dir, str) or Path(config_dir).is_absolute() or ".." in Path(
            config_dir).parts or "\x00" in config_dir:
        raise StackFileError(f"{project_file}: stackConfigDir: {config_dir!r}; allowed: a "
                             "folder inside the project, like stacks")
    return name, project_dir / config_dir


def read_stack(stack: str, project_dir: Path) -> StackConfig:
    """Read ``Pulumi.<stack>.yaml`` strictly; every malformed input is a ``StackFileError``."""
    check_stack_name(stack)
    project, config_dir = read_project(project_dir)
    path = config_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name[len("Pulumi."):-len(".yaml")]
                       for p in config_dir.glob("Pulumi.*.yaml"))
        raise StackFileError(
            f"--stack: no stack file {path}; known stacks: {', '.join(known) or 'none'}"
        )
    doc = load(path)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise StackFileError(f"{path}: expected a mapping with `config:` at the top, got "
                             f"{_kind(doc)}")
    entries = doc.get("config")
    if entries is None:
        entries = {}
    if not isinstance(entries, dict):
        raise StackFileError(f"{path}: config: expected a mapping of key -> value, got "
                             f"{_kind(entries)}")
    config: dict[str, str] = {}
    raw: dict[str, Any] = {}
    secret_keys: list[str] = []
    for key, value in entries.items():
        if not CONFIG_KEY_RE.fullmatch(key):
            raise StackFileError(f"{path}: config: key {key[:80]!r}; allowed: {CONFIG_KEY_HELP}")
        full = key if ":" in key else f"{project}:{key}"
        if full in raw:
            raise StackFileError(f"{path}: config.{key}: set twice (as {full}); allowed: "
                                 "each key once")
        if isinstance(value, dict) and "secure" in value:
            cipher = value["secure"]
            if set(value) != {"secure"} or not isinstance(cipher, str) or not cipher:
                raise StackFileError(
                    f"{path}: config.{key}.secure: {_kind(cipher)}; allowed: only `secure: "
                    "<ciphertext>`, as written by pulumi config set --secret"
                )
            secret_keys.append(full)
            value = SECRET_PLACEHOLDER
        raw[full] = value
        config[full] = value if isinstance(value, str) else json.dumps(value)
    return StackConfig(project, stack, project_dir, path, config, secret_keys, raw)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value) if len(repr(value)) <= 40 else f"a {type(value).__name__}"
