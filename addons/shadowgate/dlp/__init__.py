"""DLP detection: find secrets and personal data in prompt text, and redact them.

A Python library (no mitmproxy; one compiled dependency, ahocorasick-rs, for the one pass that
finds every keyword and key-format literal): the proxy's request path, the `shadowgate scan`
command and the benchmark all use it the same way.

    from shadowgate.dlp import Placeholders, Scanner, redact

    scanner = Scanner()                       # every detector; Scanner({"EMAIL", "JWT"}) for some
    findings = scanner.scan(text)             # sorted, non-overlapping, whole values
    scanner.scan(text, deadline)              # ScanTimeout past time.thread_time() == deadline
    ph = Placeholders()                       # one per request
    safe = redact(text, findings, ph.for_text(text))   # "... [EMAIL_1] ... [AWS_ACCESS_KEY_1] ..."
    answer = ph.restore(model_answer)         # reversible mode

TYPES maps every finding type to its kind ("secret" or "pii"), for validating policy files.
OPT_IN_TYPES are the types a scanner reports only when asked (Scanner(opt_in=...), or
scanner.including(...)): person names.
"""

from types import MappingProxyType

from .model import TYPES as _TYPES
from .model import Finding
from .scanner import OPT_IN_TYPES
from .scanner import Placeholders
from .scanner import Scanner
from .scanner import ScanTimeout
from .scanner import redact

TYPES = MappingProxyType(_TYPES)

__all__ = ["OPT_IN_TYPES", "TYPES", "Finding", "Placeholders", "ScanTimeout", "Scanner", "redact"]
