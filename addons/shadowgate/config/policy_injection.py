"""The policy's `injection:` section: prompt-injection screening of prompts and tool results.

    injection:
      prompts: flag          # off | flag | block: what a person (or an agent) sends as its prompt
      tool_results: block    # off | flag | block: tool results carried back in the request
      detectors: {hidden_tags: block, hidden_zero_width: off}   # per-detector overrides
      on_error: block        # a screen that fails or runs out of time: block (fail closed) or allow
      budget_ms: 250         # CPU time per request, as DLP's

Absent: nothing is screened. `flag` records the detectors that fired (ai_requests.injection_flags)
and forwards the request; `block` refuses it in the provider's error shape. What each detector
finds: docs/screening.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from shadowgate.config.yamlfile import ConfigError
from shadowgate.config.yamlfile import line_of
from shadowgate.config.yamlfile import line_of_key

OFF = "off"
FLAG = "flag"
BLOCK = "block"
ALLOW = "allow"
INJECTION_ACTIONS = (OFF, FLAG, BLOCK)
# The two kinds of text screened: what the user sent, and tool results the model will read
# (screened as documents: text that steers the answer counts there).
PROMPT = "prompt"
TOOL_RESULT = "tool_result"
_KEYS = {"prompts", "tool_results", "detectors", "on_error", "budget_ms"}


@dataclass(frozen=True, slots=True)
class InjectionPolicy:
    prompts: str = FLAG
    tool_results: str = FLAG
    detectors: dict[str, str] = field(default_factory=dict)  # detector -> off | flag | block
    on_error: str = BLOCK
    budget_ms: float = 250.0

    def action_for(self, detector: str, kind: str) -> str:
        """What a detector firing on this kind of text (PROMPT or TOOL_RESULT) leads to."""
        default = self.prompts if kind == PROMPT else self.tool_results
        override = self.detectors.get(detector)
        if override is None or default == OFF:
            return default
        return override

    def screens(self, kind: str) -> bool:
        return (self.prompts if kind == PROMPT else self.tool_results) != OFF


def section_actions(
    path: str | Path, raw: Any, section: str, keys: set[str], defaults: dict[str, str], choices: tuple[str, ...]
) -> dict[str, str]:
    """Check a policy section's shape; its action keys ({key: default}) read and validated.
    YAML 1.1 reads an unquoted `off` as false, so false means "off"."""
    if not isinstance(raw, dict):
        raise ConfigError(path, line_of(raw), f"{section} must be a mapping")
    unknown = set(map(str, raw)) - keys
    if unknown:
        raise ConfigError(path, line_of(raw, 1), f"{section}: unknown keys {sorted(unknown)} (expected {sorted(keys)})")
    actions = {}
    for key, default in defaults.items():
        value = raw.get(key, default)
        actions[key] = OFF if value is False else value
        if actions[key] not in choices:
            raise ConfigError(path, line_of_key(raw, key), f"{section}.{key} must be one of {', '.join(choices)}")
    return actions


def parse_injection(path: str | Path, raw: Any) -> InjectionPolicy | None:
    """The injection section; None when both kinds are off (then nothing is screened)."""
    from shadowgate.screening import FLAGS

    actions = section_actions(path, raw, "injection", _KEYS, {"prompts": FLAG, "tool_results": FLAG}, INJECTION_ACTIONS)
    raw_detectors = raw.get("detectors") or {}
    if not isinstance(raw_detectors, dict):
        raise ConfigError(path, line_of_key(raw, "detectors"), "injection.detectors must map detectors to actions")
    detectors = {}
    for name, action in raw_detectors.items():
        if name not in FLAGS:
            raise ConfigError(
                path,
                line_of_key(raw_detectors, name),
                f"injection.detectors: unknown detector {name!r} (known: {', '.join(FLAGS)})",
            )
        detectors[name] = OFF if action is False else action
        if detectors[name] not in INJECTION_ACTIONS:
            raise ConfigError(
                path,
                line_of_key(raw_detectors, name),
                f"injection.detectors.{name} must be one of {', '.join(INJECTION_ACTIONS)}",
            )
    on_error = raw.get("on_error", BLOCK)
    if on_error not in (BLOCK, ALLOW):
        raise ConfigError(path, line_of_key(raw, "on_error"), "injection.on_error must be block or allow")
    budget = raw.get("budget_ms", 250)
    if not isinstance(budget, int | float) or isinstance(budget, bool) or budget <= 0:
        raise ConfigError(path, line_of_key(raw, "budget_ms"), "injection.budget_ms must be a positive number")
    if actions["prompts"] == OFF and actions["tool_results"] == OFF:
        return None
    return InjectionPolicy(
        prompts=actions["prompts"],
        tool_results=actions["tool_results"],
        detectors=detectors,
        on_error=on_error,
        budget_ms=float(budget),
    )
