"""The SIEM feed: rows in from the event loop, lines out to every destination, on one thread.

put() is all the event loop does: one bounded deque append (a full queue counts the row as
dropped rather than grow without end or wait). The thread wakes every `interval` seconds,
builds the events, renders each destination's lines and sends them. A destination that fails
keeps its lines and retries them with a growing pause (up to 30 s); what no longer fits its
backlog is dropped and counted. Loss is counted and logged, never silent, and a dead SIEM
never slows the proxy.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from shadowgate.events.formats import render
from shadowgate.events.schema import event_of
from shadowgate.events.transports import Destination
from shadowgate.events.transports import Sink
from shadowgate.events.transports import open_sink

log = logging.getLogger(__name__)

MAX_RETRY_PAUSE = 30.0


class _Outlet:
    """One destination: its sink, the lines waiting for it, and its failure state."""

    def __init__(self, dest: Destination, sink: Sink, backlog: int) -> None:
        self.dest = dest
        self.sink = sink
        self.waiting: collections.deque[str] = collections.deque()
        self.backlog = backlog
        self.sent = 0
        self.dropped = 0
        self.failures = 0
        self.retry_at = 0.0
        self.last_error: str | None = None


class EventFeed:
    def __init__(
        self,
        destinations: Sequence[Destination],
        *,
        max_queue: int = 10_000,
        interval: float = 0.2,
        tls_ca: str | None = None,
        sinks: Sequence[Sink] | None = None,
    ) -> None:
        opened = sinks if sinks is not None else [open_sink(d, tls_ca=tls_ca) for d in destinations]
        self.outlets = [_Outlet(d, s, max_queue) for d, s in zip(destinations, opened, strict=True)]
        self.max_queue = max_queue
        self.interval = interval
        self._queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.queued = 0
        self.dropped = 0  # the queue was full: the event never left the proxy
        self._last_loss_log = 0.0

    # --- event loop ---------------------------------------------------------------------------

    def put(self, table: str, row: Any) -> None:
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            return
        self._queue.append((table, row))
        self.queued += 1

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shadowgate-siem", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (one last try per destination), then close the sinks."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None
        for outlet in self.outlets:
            outlet.sink.close()
        lost = self.dropped + sum(o.dropped + len(o.waiting) for o in self.outlets)
        if lost:
            log.error("shadowgate: the SIEM feed lost %d events", lost)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is empty and no destination has lines waiting (tests)."""
        deadline = time.monotonic() + timeout
        while self._queue or any(o.waiting for o in self.outlets):
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            time.sleep(0.02)
        return True

    @property
    def last_error(self) -> str | None:
        return next((f"{o.dest}: {o.last_error}" for o in self.outlets if o.last_error), None)

    @property
    def sent(self) -> int:
        return sum(o.sent for o in self.outlets)

    @property
    def lost(self) -> int:
        return self.dropped + sum(o.dropped for o in self.outlets)

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._drain(final=stopping)
            except Exception:  # a bug here must not end the feed for good
                log.exception("shadowgate: the SIEM feed failed a batch")
            if stopping:
                return

    def _drain(self, *, final: bool) -> None:
        events = []
        queue = self._queue
        for _ in range(len(queue)):
            table, row = queue.popleft()
            events.append(event_of(table, row))
        now = time.monotonic()
        for outlet in self.outlets:
            if events:
                network = outlet.dest.network
                outlet.waiting.extend(render(outlet.dest.fmt, e, network=network) for e in events)
                over = len(outlet.waiting) - outlet.backlog
                if over > 0:
                    for _ in range(over):
                        outlet.waiting.popleft()
                    outlet.dropped += over
                    self._report_loss(outlet, "its backlog is full")
            if outlet.waiting and (now >= outlet.retry_at or final):
                self._send(outlet, now)

    def _send(self, outlet: _Outlet, now: float) -> None:
        lines = list(outlet.waiting)
        try:
            outlet.sink.send(lines)
        except Exception as e:  # OSError, ssl errors, a refused connection: keep and retry
            outlet.failures += 1
            outlet.retry_at = now + min(MAX_RETRY_PAUSE, 0.5 * 2 ** min(outlet.failures, 6))
            if outlet.last_error is None:
                log.error(
                    "shadowgate: SIEM destination %s failed (%s); its events are kept and retried", outlet.dest, e
                )
            outlet.last_error = str(e) or type(e).__name__
            return
        for _ in lines:
            outlet.waiting.popleft()
        outlet.sent += len(lines)
        if outlet.last_error is not None:
            log.warning("shadowgate: SIEM destination %s recovered", outlet.dest)
        outlet.failures = 0
        outlet.last_error = None

    def _report_loss(self, outlet: _Outlet, why: str) -> None:
        now = time.monotonic()
        if now - self._last_loss_log > 30:
            self._last_loss_log = now
            log.error("shadowgate: SIEM destination %s dropped %d events so far: %s", outlet.dest, outlet.dropped, why)
