"""Rate-limited logging for telemetry: a dead collector costs at most one log line every 30 s,
whether the failure is ours or one the OpenTelemetry SDK logs itself.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)


LOG_EVERY_SECONDS = 30.0


class Throttle:
    """At most one log line per interval; the lines in between are counted, not lost silently."""

    def __init__(self, interval: float = LOG_EVERY_SECONDS) -> None:
        self.interval = interval
        self._next_at = 0.0
        self._suppressed = 0
        self._lock = threading.Lock()

    def warn(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next_at:
                self._suppressed += 1
                return
            self._next_at = now + self.interval
            suppressed, self._suppressed = self._suppressed, 0
        suffix = f" ({suppressed} more since the last such line not shown)" if suppressed else ""
        log.warning("shadowgate: OpenTelemetry: " + message + suffix, *args)


class _SdkLogForwarder(logging.Handler):
    """The SDK logs every failed export (with tracebacks, per batch and retry): one line per 30 s."""

    def __init__(self, throttle: Throttle) -> None:
        super().__init__(logging.WARNING)
        self.throttle = throttle

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().splitlines()[0][:300]
        except Exception:
            message = str(record.msg)[:300]
        self.throttle.warn("%s", message)


THROTTLE = Throttle()
_forwarder_lock = threading.Lock()
_forwarder_installed = False


def quiet_sdk_logs() -> None:
    global _forwarder_installed
    with _forwarder_lock:
        if _forwarder_installed:
            return
        sdk_log = logging.getLogger("opentelemetry")
        sdk_log.addHandler(_SdkLogForwarder(THROTTLE))
        sdk_log.propagate = False
        _forwarder_installed = True
