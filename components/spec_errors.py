"""Spec errors: pydantic's errors turned into ``path: value ... allowed ...`` problems."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from components.errors import Problem

_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


class _Shown:
    """A bad value as the message shows it: its repr, cut short (a 5 MB string is not echoed)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        text = repr(self.value)
        return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-after", "function-before")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_from(exc: ValidationError) -> list[Problem]:
    """Turn pydantic's errors into ``path: value ... allowed ...`` problems."""
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        path = _path(err["loc"])
        kind = err["type"]
        value = _Shown(err.get("input"))
        ctx = err.get("ctx") or {}
        if kind == "spec_problems":
            for q in ctx["problems"]:
                out.append(Problem(f"{path}.{q.path}" if path and q.path else path or q.path, q.reason))  # noqa: E501
            continue
        if kind == "missing":
            reason = "is required but missing"
        elif kind == "literal_error":
            expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
            reason = f"{value!r} is not allowed; allowed: {expected}"
        elif kind in _TYPE_WORDS:
            reason = f"{value!r} is not {_TYPE_WORDS[kind]}"
        elif kind == "too_short":
            reason = f"needs at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}"  # noqa: E501
        elif kind == "extra_forbidden":
            reason = "unknown key"
        else:
            reason = err["msg"]
        out.append(Problem(path, reason))
    return out


def raise_problems(problems: list[Problem]) -> None:
    """Raise from inside a validator while keeping each problem's own sub-path."""
    if problems:
        raise PydanticCustomError(
            "spec_problems",
            "{summary}",
            {"summary": "; ".join(map(str, problems)), "problems": problems},
        )

