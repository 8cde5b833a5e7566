"""Structured risk facts about an AI service, and the documented risk level derived from them.

A provider entry in providers.yaml may carry

    facts:
      trains_on_inputs: {consumer: default, business: never, api: never}   # per plan tier
      retention_days: 30            # how long inputs are kept by default; 0 = not stored
      residency: [us, eu]           # where the vendor offers to keep the data
      enterprise_controls: true     # an enterprise tier with admin controls (SSO, audit, policy)
      certifications: [soc2, iso27001]
      headquarters: US              # ISO 3166-1 alpha-2
      sources: {trains_on_inputs: URL, retention_days: URL, ...}   # one source per fact

Every fact given needs a source (the vendor's own terms, privacy, help or trust page); unknown
keys and values are rejected with file and line. A fact nobody could source is left out, never
guessed: left out, it is unknown, and unknown counts against the service (a control that guesses
"safe" for what nobody checked fails open). List every plan tier the vendor sells; a tier whose
policy could not be sourced is written `unknown`, so that it still counts.

trains_on_inputs, per tier:
    default   inputs train the vendor's models and the user cannot turn it off
    opt-out   inputs train the models unless the user (or an admin) turns it off
    opt-in    inputs train the models only if the user or an admin chooses to share them
    never     inputs never train the vendor's models
    unknown   the tier exists but its policy is not documented

The risk level, never a black box (docs/catalog.md repeats this table):

    points  trains_on_inputs, the worst tier:  default 4, opt-out 2, unknown 2, opt-in 1, never 0
            retention_days:                    unknown or more than 30 days 1, else 0
            enterprise_controls:               not true 1
            certifications:                    neither soc2 nor iso27001 1
    level   0-1 low, 2-3 medium, 4 or more high

The worst tier counts because a shadow user is on whatever plan they signed up for, usually the
free one. Training with no way out weighs 4 so that it alone makes a service high: certificates
and admin controls do not help a company whose staff's inputs become training data. Headquarters
and residency are shown beside the level but never scored: where data may go is a decision for
each company's policy, not a fact to rank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from shadowgate.config.yamlfile import ConfigError
from shadowgate.config.yamlfile import line_of
from shadowgate.config.yamlfile import line_of_key

TRAINING = ("default", "opt-out", "opt-in", "never", "unknown")
TRAINING_POINTS = {"default": 4, "opt-out": 2, "unknown": 2, "opt-in": 1, "never": 0}
TIERS = ("free", "consumer", "pro", "team", "business", "enterprise", "api")
CERTIFICATIONS = ("soc2", "iso27001", "iso27017", "iso27018", "iso42001", "hipaa", "fedramp", "c5", "gdpr")
RESIDENCY = re.compile(r"[a-z]{2}|global")
COUNTRY = re.compile(r"[A-Z]{2}")
URL = re.compile(r"https://[^\s/]+\.[^\s]+")
FACT_KEYS = (
    "trains_on_inputs",
    "retention_days",
    "residency",
    "enterprise_controls",
    "certifications",
    "headquarters",
)
RISK_LEVELS = ("low", "medium", "high")


@dataclass(frozen=True, slots=True)
class Facts:
    trains_on_inputs: dict[str, str] = field(default_factory=dict)  # tier -> training value
    retention_days: int | None = None
    residency: tuple[str, ...] = ()
    enterprise_controls: bool | None = None
    certifications: tuple[str, ...] = ()
    headquarters: str | None = None
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def worst_training(self) -> str:
        """The training value of the tier that shares most (what a shadow user on a free plan meets)."""
        if not self.trains_on_inputs:
            return "unknown"
        return max(self.trains_on_inputs.values(), key=lambda v: TRAINING_POINTS[v])

    @property
    def risk_points(self) -> int:
        points = TRAINING_POINTS[self.worst_training]
        points += self.retention_days is None or self.retention_days > 30
        points += self.enterprise_controls is not True
        points += not {"soc2", "iso27001"} & set(self.certifications)
        return points

    @property
    def risk(self) -> str:
        points = self.risk_points
        return "low" if points <= 1 else "medium" if points <= 3 else "high"


UNKNOWN = Facts()


def load_facts(path: str | Path, raw: Any, pid: str, default_line: int | None) -> Facts:
    """Validate a provider's `facts` mapping; every error names file and line."""
    line = line_of(raw, default_line)
    if not isinstance(raw, dict):
        raise ConfigError(path, line, f"provider {pid!r}: 'facts' must be a mapping")
    unknown = [key for key in raw if key not in (*FACT_KEYS, "sources")]
    if unknown:
        raise ConfigError(
            path,
            line_of_key(raw, unknown[0]),
            f"provider {pid!r}: facts: unknown keys {sorted(map(str, unknown))} (expected {sorted([*FACT_KEYS, 'sources'])})",
        )

    def fail(key: str, reason: str) -> ConfigError:
        return ConfigError(path, line_of_key(raw, key), f"provider {pid!r}: facts.{key} {reason}")

    training: dict[str, str] = {}
    if "trains_on_inputs" in raw:
        value = raw["trains_on_inputs"]
        if isinstance(value, str):
            value = {"consumer": value}
        if not isinstance(value, dict) or not value:
            raise fail("trains_on_inputs", f"must be one of {list(TRAINING)} or a mapping tier -> value")
        for tier, setting in value.items():
            if tier not in TIERS:
                raise fail("trains_on_inputs", f"has unknown tier {tier!r} (one of {list(TIERS)})")
            if setting not in TRAINING:
                raise fail("trains_on_inputs", f"{tier}: {setting!r} is not one of {list(TRAINING)}")
            training[str(tier)] = str(setting)
    retention = raw.get("retention_days")
    if retention is not None and (not isinstance(retention, int) or isinstance(retention, bool) or retention < 0):
        raise fail("retention_days", "must be a whole number of days (0 = not stored)")
    residency = _strings(raw, "residency", fail)
    if any(not RESIDENCY.fullmatch(r) for r in residency):
        raise fail("residency", "takes lower-case ISO region codes such as us, eu, jp, or global")
    controls = raw.get("enterprise_controls")
    if controls is not None and not isinstance(controls, bool):
        raise fail("enterprise_controls", "must be true or false")
    certifications = _strings(raw, "certifications", fail)
    if bad := [c for c in certifications if c not in CERTIFICATIONS]:
        raise fail("certifications", f"has unknown {bad} (one of {list(CERTIFICATIONS)})")
    headquarters = raw.get("headquarters")
    if headquarters is not None and (not isinstance(headquarters, str) or not COUNTRY.fullmatch(headquarters)):
        raise fail("headquarters", "must be an ISO 3166-1 alpha-2 country code such as US")
    sources = raw.get("sources", {})
    if not isinstance(sources, dict):
        raise fail("sources", "must map each fact to the https URL that documents it")
    for key, url in sources.items():
        # The line of the offending source itself, not of `sources:`, so a long block points home.
        line = line_of_key(sources, key) or line_of_key(raw, "sources")
        if key not in FACT_KEYS:
            raise ConfigError(path, line, f"provider {pid!r}: facts.sources names unknown fact {key!r}")
        if not isinstance(url, str) or not URL.fullmatch(url):
            raise ConfigError(path, line, f"provider {pid!r}: facts.sources.{key}: {url!r} is not an https URL")
    if missing := [k for k in FACT_KEYS if k in raw and k not in sources]:
        raise fail("sources", f"lacks a source for {missing}")
    return Facts(
        trains_on_inputs=training,
        retention_days=retention,
        residency=tuple(residency),
        enterprise_controls=controls,
        certifications=tuple(certifications),
        headquarters=headquarters,
        sources={str(k): str(v) for k, v in sources.items()},
    )


def _strings(raw: dict, key: str, fail: Any) -> list[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
        raise fail(key, "must be a list of strings")
    return list(value)
