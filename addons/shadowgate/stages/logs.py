"""Where and how the proxy logs: text or JSON lines, on the terminal or in a file that rotates.

mitmproxy logs through Python's `logging` (termlog prints every record to stdout). With the
defaults nothing changes. With `shadowgate_log_format=json`, every record, mitmproxy's own
included, becomes one JSON object a line: ts (RFC 3339, UTC), level, logger, message, the client
address mitmproxy attaches to connection messages, and the structured fields our code passes with
`extra=` (event, request_id, user, host, decision, rule_id, ...); an exception's traceback goes in
`exception`. With `shadowgate_log_file`, records go to that file instead of the terminal; errors
still reach the terminal too, so a proxy that fails to start says why where it was started.

Rotation: `shadowgate_log_max_bytes` > 0 rotates in-process at that size (file.1 ... file.N,
`shadowgate_log_backups`). With 0 (the default) the file is reopened whenever it is renamed or
deleted, so an external logrotate in its default `create` mode works (no signal needed); the file
is opened in append mode, so `copytruncate` works as well.

A log line is formatted, written and flushed on the thread that logs it, the event loop included:
10-16 us a line to a local file (scripts/bench_logs.py; termlog's unflushed print: 4 us). At the
default verbosity mitmproxy logs four lines per new client connection (client and server connect
and disconnect), one per streamed response, and none for other requests on a kept-alive tunnel,
so a queue thread would not pay for itself; a log file on a slow network filesystem would need one.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import logging.handlers
import os
import sys

from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy.addons.termlog import TermLogHandler
from mitmproxy.utils import human

FORMATS = ("text", "json")
# LogRecord's own attributes; anything else on a record came from extra= and is a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}
_MARK = "_shadowgate_logs"  # on our handler and termlog filter, so a script reload replaces them


def _utc(created: float) -> str:
    return (
        datetime.datetime.fromtimestamp(created, datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _address(value: object) -> object:
    return human.format_address(value) if isinstance(value, tuple) else value


class JsonFormatter(logging.Formatter):
    """One JSON object a line; extra= fields become keys (values that are not JSON become strings)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = _address(value) if key == "client" else value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """mitmproxy's terminal line, with the date and level a file needs."""

    def format(self, record: logging.LogRecord) -> str:
        client = getattr(record, "client", None)
        text = f"{_utc(record.created)} {record.levelname:<7} " + (f"[{_address(client)}] " if client else "")
        text += record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class SizeRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler that formats each record once (the stdlib formats it twice: once to
    decide on rollover, once to write)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record) + self.terminator
            if self.stream is None:
                self.stream = self._open()
            if self.maxBytes > 0 and self.stream.tell() and self.stream.tell() + len(msg.encode()) > self.maxBytes:
                self.doRollover()
            self.stream.write(msg)
            self.stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


class _TermlogFilter(logging.Filter):
    """Keeps termlog quiet below `level` while our handler has the records."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        setattr(self, _MARK, True)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


class _CancelledStreamCallbackFilter(logging.Filter):
    """Drops the traceback CPython 3.12.0-3.12.1 logs for every open connection at shutdown.

    Those versions' StreamReaderProtocol callback asks a cancelled task for its exception, which
    raises, and asyncio logs "Exception in callback ... CancelledError" for each client still
    connected when mitmproxy stops (python/cpython#113538, fixed in 3.12.2). Nothing failed:
    an operator restarting the proxy would see a wall of tracebacks for kept-alive connections.
    They reach the "asyncio" logger because mitmproxy has removed its own loop exception handler
    by then; while that handler is installed they would be logged as mitmproxy's instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(exc, asyncio.CancelledError)
            and record.getMessage().startswith("Exception in callback StreamReaderProtocol.connection_made")
        )


def _quiet_cancelled_stream_callbacks() -> None:
    if sys.version_info >= (3, 12, 2):
        return
    asyncio_logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _CancelledStreamCallbackFilter) for f in asyncio_logger.filters):
        asyncio_logger.addFilter(_CancelledStreamCallbackFilter())


class Logs:
    def __init__(self) -> None:
        self.handler: logging.Handler | None = None

    def load(self, loader) -> None:
        # Stays for the life of the process: the tracebacks come after every addon's done().
        _quiet_cancelled_stream_callbacks()
        loader.add_option(
            name="shadowgate_log_format",
            typespec=str,
            default="text",
            help="Log line format: text (mitmproxy's) or json (one object a line: ts, level, logger, message, fields).",
            choices=FORMATS,
        )
        loader.add_option(
            name="shadowgate_log_file",
            typespec=str,
            default="",
            help="Write the log to this file instead of the terminal (errors still reach the terminal). Empty: the terminal.",
        )
        loader.add_option(
            name="shadowgate_log_max_bytes",
            typespec=int,
            default=0,
            help="Rotate the log file when it would pass this size. 0: never in-process (an external logrotate works).",
        )
        loader.add_option(
            name="shadowgate_log_backups",
            typespec=int,
            default=5,
            help="Rotated log files to keep (file.1 ... file.N) with shadowgate_log_max_bytes.",
        )

    def configure(self, updated: set[str]) -> None:
        if not updated & {"shadowgate_log_format", "shadowgate_log_file", "shadowgate_log_max_bytes",
                          "shadowgate_log_backups", "termlog_verbosity"}:  # fmt: skip
            return
        opts = ctx.options
        fmt, path = opts.shadowgate_log_format, opts.shadowgate_log_file
        if fmt not in FORMATS:
            raise exceptions.OptionsError(f"shadowgate_log_format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        if opts.shadowgate_log_max_bytes < 0:
            raise exceptions.OptionsError(
                f"shadowgate_log_max_bytes must be 0 or more, not {opts.shadowgate_log_max_bytes}"
            )
        if opts.shadowgate_log_backups < 0:
            raise exceptions.OptionsError(
                f"shadowgate_log_backups must be 0 or more, not {opts.shadowgate_log_backups}"
            )
        if opts.shadowgate_log_max_bytes and not path:
            raise exceptions.OptionsError("shadowgate_log_max_bytes needs shadowgate_log_file")
        if opts.shadowgate_log_max_bytes and opts.shadowgate_log_backups == 0:
            raise exceptions.OptionsError(
                "shadowgate_log_max_bytes needs shadowgate_log_backups >= 1 (0 would never rotate)"
            )

        handler: logging.Handler | None = None
        if path:
            path = os.path.expanduser(path)
            try:
                if opts.shadowgate_log_max_bytes:
                    handler = SizeRotatingFileHandler(
                        path,
                        maxBytes=opts.shadowgate_log_max_bytes,
                        backupCount=opts.shadowgate_log_backups,
                        encoding="utf-8",
                    )
                else:
                    handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
            except OSError as e:
                raise exceptions.OptionsError(f"shadowgate_log_file: cannot write {path}: {e.strerror or e}") from e
        elif fmt == "json":
            handler = logging.StreamHandler(sys.stdout)
        if handler is not None:
            handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
            handler.setLevel(opts.termlog_verbosity.upper())
            setattr(handler, _MARK, True)
        self._install(handler, logging.ERROR if path else logging.CRITICAL + 1)

    def _install(self, handler: logging.Handler | None, termlog_level: int) -> None:
        root = logging.getLogger()
        for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
            root.removeHandler(old)
            if old is not handler:
                old.close()
        for h in root.handlers:
            if isinstance(h, TermLogHandler):
                for f in [f for f in h.filters if getattr(f, _MARK, False)]:
                    h.removeFilter(f)
                if handler is not None:
                    h.addFilter(_TermlogFilter(termlog_level))
        self.handler = handler
        if handler is not None:
            root.addHandler(handler)

    def done(self) -> None:
        # The handler stays until the interpreter exits (logging.shutdown closes it): addons
        # after this one still log while they shut down.
        if self.handler is not None:
            self.handler.flush()


def flow_fields(event: str, rec=None) -> dict:
    """extra= for a log line about one AI call: the event's name and the call's identity (never
    its content or credentials), so a JSON log line can be joined with its ai_requests row."""
    fields: dict = {"event": event}
    if rec is not None:
        fields.update(request_id=rec.request_id, user=rec.person.user, host=rec.host,
                      decision=rec.decision.action, rule_id=rec.decision.rule_id)  # fmt: skip
    return fields
