"""The policy's `responses:` section: inspection of the model's answers (OWASP LLM02, LLM06).

    responses:
      dlp: redact            # off | log | redact | block: secrets and personal data in an answer
      exfil_links: block     # off | log | redact | block: markdown/HTML images and links that carry
                             # data to a host other than the provider's in their URL
      allow_hosts: ["*.corp.example"]   # link hosts never counted as exfiltration
      hold_chars: 256        # a streamed answer is held back this many characters per stream
      on_error: block        # an inspection that fails: block (cut the answer) or allow

Absent: answers pass untouched. `log` records what was found (ai_requests.response_findings),
`redact` replaces it in the answer (streamed or not), `block` answers with the provider's error
instead, or, in a stream, ends it with an error event in the provider's shape.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadowgate.config.policy_injection import section_actions
from shadowgate.config.yamlfile import ConfigError
from shadowgate.config.yamlfile import line_of_key

OFF = "off"
LOG = "log"
REDACT = "redact"
BLOCK = "block"
ALLOW = "allow"
RESPONSE_ACTIONS = (OFF, LOG, REDACT, BLOCK)
_KEYS = {"dlp", "exfil_links", "allow_hosts", "hold_chars", "on_error"}
# Action strength, for the one action an answer gets when both checks fire.
RANK = {OFF: 0, LOG: 1, REDACT: 2, BLOCK: 3}


@dataclass(frozen=True, slots=True)
class ResponsesPolicy:
    dlp: str = OFF
    exfil_links: str = OFF
    allow_hosts: tuple[str, ...] = ()
    hold_chars: int = 256
    on_error: str = BLOCK

    def host_allowed(self, host: str) -> bool:
        host = host.lower()
        return any(fnmatch.fnmatchcase(host, p) for p in self.allow_hosts)

    @property
    def changes_answers(self) -> bool:
        """Whether the answer may be rewritten or cut (not only logged)."""
        return RANK[self.dlp] >= RANK[REDACT] or RANK[self.exfil_links] >= RANK[REDACT]


def parse_responses(path: str | Path, raw: Any) -> ResponsesPolicy | None:
    """The responses section; None when both checks are off (then answers are not inspected)."""
    actions = section_actions(path, raw, "responses", _KEYS, {"dlp": OFF, "exfil_links": OFF}, RESPONSE_ACTIONS)
    hosts = raw.get("allow_hosts") or []
    if isinstance(hosts, str):
        hosts = [hosts]
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise ConfigError(path, line_of_key(raw, "allow_hosts"), "responses.allow_hosts must be a list of host globs")
    hold = raw.get("hold_chars", 256)
    if not isinstance(hold, int) or isinstance(hold, bool) or not 32 <= hold <= 65536:
        raise ConfigError(
            path, line_of_key(raw, "hold_chars"), "responses.hold_chars must be a whole number from 32 to 65536"
        )
    on_error = raw.get("on_error", BLOCK)
    if on_error not in (BLOCK, ALLOW):
        raise ConfigError(path, line_of_key(raw, "on_error"), "responses.on_error must be block or allow")
    if actions["dlp"] == OFF and actions["exfil_links"] == OFF:
        return None
    return ResponsesPolicy(
        dlp=actions["dlp"],
        exfil_links=actions["exfil_links"],
        allow_hosts=tuple(h.lower() for h in hosts),
        hold_chars=hold,
        on_error=on_error,
    )
