"""The SIEM feed: rows in from the event loop, lines out to every destination, on one thread.

put() is all the event loop does: one bounded deque append (a full queue counts the row as
dropped rather than grow without end or wait). The thread wakes every `interval` seconds,
builds the events, renders each destination's lines and sends them. A destination that fails
keeps its lines and retries them with a growing pause (up to 30 s); what no longer fits its
backlog is dropped and counted. Loss is counted and logged, never silent, and a dead SIEM
never slows the proxy.

Alerts arrive ready-made (put_event, from the alerts' thread) and travel with the rest; their
losses are also counted on their own (`alerts_lost`), since an alert is what someone acts on.
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
from shadowgate.events.schema import get
from shadowgate.events.transports import Destination
from shadowgate.events.transports import Sink
from shadowgate.events.transports import open_sink
from shadowgate.events.transports import probe_file

log = logging.getLogger(__name__)

MAX_RETRY_PAUSE = 30.0
EVENT = ""  # the queue's table name for an event built already (an alert)


class _Outlet:
    """One destination: its sink, the lines waiting for it, and its failure state."""

    def __init__(self, dest: Destination, sink: Sink, backlog: int) -> None:
        self.dest = dest
        self.sink = sink
        self.waiting: collections.deque[tuple[str, bool]] = collections.deque()  # (line, an alert)
        self.backlog = backlog
        self.sent = 0
        self.dropped = 0
        self.alerts_dropped = 0
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
        self.dropped = 0  # the queue was full, or the event could not be built: it never left the proxy
        self.alerts_refused = 0  # alerts among them
        self._last_loss_log = 0.0
        self._last_queue_log = 0.0

    # --- event loop ---------------------------------------------------------------------------

    def put(self, table: str, row: Any) -> None:
        if len(self._queue) >= self.max_queue:
            self._queue_full(alert=False)
            return
        self._queue.append((table, row))
        self.queued += 1

    def put_event(self, event: dict[str, Any]) -> None:
        """An event built already (an alert, from the alerts' thread)."""
        if len(self._queue) >= self.max_queue:
            self._queue_full(alert=True)
            return
        self._queue.append((EVENT, event))
        self.queued += 1

    def _queue_full(self, *, alert: bool) -> None:
        self.dropped += 1
        self.alerts_refused += alert
        now = time.monotonic()
        if now - self._last_queue_log > 30:  # once in a while: this runs on the event loop
            self._last_queue_log = now
            log.error(
                "shadowgate: the SIEM feed's queue is full: %d events dropped so far (%d of them alerts)",
                self.dropped,
                self.alerts_refused,
            )

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
        alerts = self.alerts_lost + sum(alert for o in self.outlets for _, alert in o.waiting)
        if lost:
            log.error("shadowgate: the SIEM feed lost %d events (%d of them alerts)", lost, alerts)

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

    @property
    def alerts_lost(self) -> int:
        return self.alerts_refused + sum(o.alerts_dropped for o in self.outlets)

    @property
    def failing(self) -> int:
        return sum(1 for o in self.outlets if o.last_error)

    def problems(self) -> list[str]:
        """The destinations failing now, with why; a file not failing yet is probed (can it be
        appended to, is its disk full?). Blocking: health calls it on a thread."""
        found = []
        for outlet in self.outlets:
            error = outlet.last_error
            if error is None and outlet.dest.scheme == "file":
                error = probe_file(outlet.dest.target)
            if error:
                found.append(f"siem {outlet.dest}: {error}")
        return found

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        for outlet in self.outlets:  # said at start-up, not first when the first event is lost
            if outlet.dest.scheme == "file" and (error := probe_file(outlet.dest.target)):
                log.error("shadowgate: SIEM destination %s cannot be written (%s); its events wait", outlet.dest, error)
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
            try:
                events.append(row if table == EVENT else event_of(table, row))
            except Exception:  # one odd row must not take the batch with it
                self.dropped += 1
                log.exception("shadowgate: a SIEM event could not be built from a %s row; dropped", table or "alert")
        now = time.monotonic()
        for outlet in self.outlets:
            if events:
                self._render(outlet, events)
            if outlet.waiting and (now >= outlet.retry_at or final):
                self._send(outlet, now)

    def _render(self, outlet: _Outlet, events: list[dict[str, Any]]) -> None:
        network = outlet.dest.network
        for event in events:
            try:
                line = render(outlet.dest.fmt, event, network=network)
            except Exception:
                outlet.dropped += 1
                log.exception("shadowgate: a SIEM event could not be written as %s; dropped", outlet.dest.fmt)
                continue
            outlet.waiting.append((line, get(event, "event.kind") == "alert"))
        over = len(outlet.waiting) - outlet.backlog
        if over > 0:
            for _ in range(over):
                _, alert = outlet.waiting.popleft()
                outlet.alerts_dropped += alert
            outlet.dropped += over
            self._report_loss(outlet, "its backlog is full")

    def _send(self, outlet: _Outlet, now: float) -> None:
        lines = [line for line, _ in outlet.waiting]
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
            log.error(
                "shadowgate: SIEM destination %s: %d events dropped so far (%d of them alerts): %s",
                outlet.dest,
                outlet.dropped,
                outlet.alerts_dropped,
                why,
            )
