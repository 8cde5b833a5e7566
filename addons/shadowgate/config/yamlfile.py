"""YAML loading that remembers line numbers, so a broken catalog or policy names file and line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration file is invalid. str() is 'file:line: reason', ready for an operator."""

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {reason}")


class LineDict(dict):
    """A mapping from YAML that knows the (1-based) line it started on, and each key's line."""

    line: int = 0
    key_lines: dict


class LineList(list):
    line: int = 0


class _LineLoader(yaml.SafeLoader):
    pass


# libyaml's parser, when PyYAML was built with it: it parses the catalog in ~0.1 s of CPU instead
# of ~0.65 s, and the catalog is parsed at every start, reload and settings load. It gives the same
# nodes and line marks; only its error wording differs, so a file it refuses is parsed again with
# the pure-Python parser for the message an operator reads.
class _FastLineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, "mapping keys must be scalars", key_node.start_mark)
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    mapping.line = node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    seq = LineList(loader.construct_object(child, deep=True) for child in node.value)
    seq.line = node.start_mark.line + 1
    return seq


for _loader in (_LineLoader, _FastLineLoader):
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file; every failure becomes a ConfigError with file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(path, None, f"cannot read file: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(path, None, f"not UTF-8 text: {e.reason}") from e
    try:
        return yaml.load(text, Loader=_FastLineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        pass
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(path, line, f"invalid YAML: {e.problem or e.context}") from e
    except yaml.YAMLError as e:
        raise ConfigError(path, None, f"invalid YAML: {e}") from e


def line_of(value: Any, default: int | None = None) -> int | None:
    return getattr(value, "line", None) or default


def line_of_key(mapping: Any, key: str) -> int | None:
    """The line of one key in a mapping (falling back to the mapping's own line)."""
    return getattr(mapping, "key_lines", {}).get(key) or line_of(mapping)


def one_or_more(path: str | Path, value: Any, line: int | None, error: str) -> tuple[str, ...] | None:
    """A setting written as one non-empty string or a non-empty list of them, as a tuple (None when
    absent); anything else is refused with `error`."""
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(path, line, error)
    return tuple(values)


def whole_number(
    path: str | Path, raw: Any, key: str, default: int, line: int | None, what: str, high: int | None = None
) -> int:
    """raw[key] (else the default) as a whole number from 1 (to `high`); `what` names it in the error."""
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or (high is not None and value > high):
        limit = f"from 1 to {high}" if high is not None else ">= 1"
        raise ConfigError(path, line, f"{what} is a whole number {limit}")
    return value


def mapping_line(path: str | Path, raw: Any, keys: set[str], not_a_mapping: str, what: str) -> int:
    """The line of a section that must be a mapping of these keys (refused with the reason otherwise)."""
    line = line_of(raw) or 0
    if not isinstance(raw, dict):
        raise ConfigError(path, line, not_a_mapping)
    unknown = set(map(str, raw)) - keys
    if unknown:
        raise ConfigError(path, line, f"{what}: unknown keys {sorted(unknown)} (expected {', '.join(sorted(keys))})")
    return line


def did_you_mean(value: str, known: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the closest known name, or "" when none is close: one
    suggestion, never the whole list of names, in an error about a misspelt one."""
    close = difflib.get_close_matches(value, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
