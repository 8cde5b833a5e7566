"""Field paths: where a web app keeps the prompt, the file name or the model in a request body.

A path is steps separated by dots, with brackets for list items, and pipes that decode a string
into a structure:

    model                                     a key
    messages[?author.role==user].content.parts[*]   a filter on list items, then every item
    ['f.req'] | json | [1] | json | [0][0]     a key with a dot, a JSON string inside a JSON string
    content | b64                              a base64 string (a file sent inside JSON)

Every path can be read (`values`) and written (`replace`): writing rebuilds only the containers
on the way to the changed strings and re-encodes a piped string exactly as it was encoded (see
codecs.dump_json_like), so a redacted body differs from the original only inside the text.
Paths are compiled once, when the catalog loads, and a bad one is a catalog error.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shadowgate.webapps.codecs import dump_json_like
from shadowgate.webapps.codecs import load_json

_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
_QUOTED = re.compile(r"\['((?:[^'\\]|\\.)*)'\]")
_INDEX = re.compile(r"\[(-?\d+)\]")
_FILTER = re.compile(r"\[\?([^=\]]+)==([^\]]*)\]")
DECODERS = ("json", "b64")


class PathError(ValueError):
    """A field path that does not parse; the message says where."""


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # key | index | all | filter | json | b64
    key: str | int | None = None
    sub: tuple[Step, ...] = ()  # filter: the path inside each item
    value: str | None = None  # filter: the value it must equal (compared as text)


@dataclass(frozen=True, slots=True)
class FieldPath:
    text: str
    steps: tuple[Step, ...]

    def values(self, doc: Any) -> list[Any]:
        """Every value the path reaches (lists and objects included)."""
        return list(_walk(doc, self.steps))

    def strings(self, doc: Any) -> list[str]:
        """Every string the path reaches; a list reached at the end gives its strings."""
        out: list[str] = []
        for value in _walk(doc, self.steps):
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, list):
                out.extend(v for v in value if isinstance(v, str))
        return out

    def first(self, doc: Any) -> Any:
        for value in _walk(doc, self.steps):
            return value
        return None

    def replace(self, doc: Any, edit: Callable[[str], str]) -> Any:
        """The document with every string the path reaches passed through `edit`."""
        return _apply(doc, self.steps, edit)


def compile_path(text: str) -> FieldPath:
    if not isinstance(text, str) or not text.strip():
        raise PathError("a field path must be a non-empty string")
    steps: list[Step] = []
    for part in (p.strip() for p in text.split("|")):
        if part in DECODERS:
            steps.append(Step(part))
        elif not part:
            raise PathError(f"{text!r}: an empty step between pipes")
        else:
            steps.extend(_parse_steps(part, text))
    return FieldPath(text, tuple(steps))


def _parse_steps(part: str, whole: str) -> list[Step]:
    steps: list[Step] = []
    i = 0
    while i < len(part):
        if part[i] == "." and steps:
            i += 1
        if m := _NAME.match(part, i):
            steps.append(Step("key", m.group()))
        elif m := _QUOTED.match(part, i):
            steps.append(Step("key", m.group(1).replace("\\'", "'")))
        elif part.startswith("[*]", i):
            steps.append(Step("all"))
            i += 3
            continue
        elif m := _INDEX.match(part, i):
            steps.append(Step("index", int(m.group(1))))
        elif m := _FILTER.match(part, i):
            sub = tuple(_parse_steps(m.group(1).strip(), whole))
            steps.append(Step("filter", None, sub, m.group(2).strip().strip("'\"")))
        else:
            raise PathError(f"{whole!r}: cannot read {part[i:]!r}")
        i = m.end()
    return steps


def _walk(node: Any, steps: tuple[Step, ...]) -> Iterator[Any]:
    if not steps:
        yield node
        return
    step, rest = steps[0], steps[1:]
    kind = step.kind
    if kind == "key":
        if isinstance(node, dict) and step.key in node:
            yield from _walk(node[step.key], rest)
    elif kind == "index":
        assert isinstance(step.key, int)
        if isinstance(node, list) and -len(node) <= step.key < len(node):
            yield from _walk(node[step.key], rest)
    elif kind == "all":
        if isinstance(node, list):
            for item in node:
                yield from _walk(item, rest)
        elif isinstance(node, dict):
            for item in node.values():
                yield from _walk(item, rest)
    elif kind == "filter":
        if isinstance(node, list):
            for item in node:
                if _matches(item, step):
                    yield from _walk(item, rest)
    elif kind == "json":
        if isinstance(node, str):
            decoded = load_json(node)
            if decoded is not None:
                yield from _walk(decoded, rest)
    elif kind == "b64":
        if isinstance(node, str):
            raw = decode_b64(node)
            if raw is not None:
                yield from _walk(raw.decode("utf-8", "replace"), rest)


def _matches(item: Any, step: Step) -> bool:
    return any(_as_text(v) == step.value for v in _walk(item, step.sub))


def _as_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return str(value)


def _apply(node: Any, steps: tuple[Step, ...], edit: Callable[[str], str]) -> Any:
    if not steps:
        if isinstance(node, str):
            return edit(node)
        if isinstance(node, list):  # a list at the end of a path: its strings are the values
            return [edit(v) if isinstance(v, str) else v for v in node]
        return node
    step, rest = steps[0], steps[1:]
    kind = step.kind
    if kind == "key" and isinstance(node, dict) and step.key in node:
        new = _apply(node[step.key], rest, edit)
        return node if new is node[step.key] else _with(node, step.key, new)
    if kind == "index" and isinstance(node, list) and isinstance(step.key, int) and -len(node) <= step.key < len(node):
        new = _apply(node[step.key], rest, edit)
        if new is node[step.key]:
            return node
        copy = list(node)
        copy[step.key] = new
        return copy
    if kind in ("all", "filter") and isinstance(node, list):
        items = [_apply(item, rest, edit) if kind == "all" or _matches(item, step) else item for item in node]
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    if kind == "all" and isinstance(node, dict):
        changed = {k: _apply(v, rest, edit) for k, v in node.items()}
        return node if all(changed[k] is node[k] for k in node) else _with_all(node, changed)
    if kind == "json" and isinstance(node, str):
        decoded = load_json(node)
        if decoded is None:
            return node
        new = _apply(decoded, rest, edit)
        return node if new is decoded else dump_json_like(new, node)
    if kind == "b64" and isinstance(node, str):
        raw = decode_b64(node)
        if raw is None:
            return node
        text = raw.decode("utf-8", "replace")
        new = _apply(text, rest, edit)
        return node if new is text else base64.b64encode(str(new).encode()).decode()
    return node


def _with(node: dict, key: Any, value: Any) -> dict:
    """A copy of a mapping with one value changed, keys in their order (and its type kept, so a
    DuplicateKeys body keeps the values its repeated keys shadow)."""
    copy = type(node)(node) if type(node) is dict else _copy_mapping(node)
    copy[key] = value
    return copy


def _with_all(node: dict, values: dict) -> dict:
    copy = type(node)(node) if type(node) is dict else _copy_mapping(node)
    copy.update(values)
    return copy


def _copy_mapping(node: dict) -> dict:
    copy = dict(node)
    shadowed = getattr(node, "shadowed", None)
    if shadowed is None:
        return copy
    from shadowgate.wireformats.common import DuplicateKeys

    out = DuplicateKeys([*shadowed, *copy.items()])
    return out


def decode_b64(text: str) -> bytes | None:
    data = text.partition(",")[2] if text.startswith("data:") else text
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=False)
    except (binascii.Error, ValueError):
        return None
