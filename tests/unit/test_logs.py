"""Logs in-process (mitmproxy's taddons): option checks, the JSON and text line formats, the
handler it installs and removes. tests/test_logs.py shows the files a real mitmdump writes."""

from __future__ import annotations

import json
import logging

import pytest
from mitmproxy.exceptions import OptionsError
from mitmproxy.test import taddons

from shadowgate.stages.logs import JsonFormatter
from shadowgate.stages.logs import Logs
from shadowgate.stages.logs import TextFormatter
from shadowgate.stages.logs import flow_fields


@pytest.fixture
def logs_context():
    logs = Logs()
    with taddons.context(logs) as tctx:
        # termlog's option (mitmdump's TermLog declares it; taddons loads no TermLog).
        tctx.options.add_option("termlog_verbosity", str, "info", "")
        yield logs, tctx
        tctx.configure(logs, shadowgate_log_format="text", shadowgate_log_file="", shadowgate_log_max_bytes=0)
    assert not [h for h in logging.getLogger().handlers if getattr(h, "_shadowgate_logs", False)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"shadowgate_log_format": "xml"}, "shadowgate_log_format must be one of text, json, not 'xml'"),
        ({"shadowgate_log_file": "/nonexistent-dir/x.log"}, "shadowgate_log_file: cannot write /nonexistent-dir/x.log"),
        ({"shadowgate_log_max_bytes": 1000}, "shadowgate_log_max_bytes needs shadowgate_log_file"),
        (
            {"shadowgate_log_file": "{tmp}/x.log", "shadowgate_log_max_bytes": -5},
            "shadowgate_log_max_bytes must be 0 or more",
        ),
        ({"shadowgate_log_backups": -1}, "shadowgate_log_backups must be 0 or more"),
        (
            {"shadowgate_log_file": "{tmp}/x.log", "shadowgate_log_max_bytes": 10, "shadowgate_log_backups": 0},
            "needs shadowgate_log_backups >= 1",
        ),
    ],
)
def test_bad_log_options_are_rejected(logs_context, tmp_path, options, message):
    logs, tctx = logs_context
    values = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in options.items()}
    with pytest.raises(OptionsError) as failed:
        tctx.configure(logs, **values)
    assert message in str(failed.value)
    assert logs.handler is None and tctx.options.shadowgate_log_format == "text"  # rolled back


def test_json_file_handler_writes_one_object_a_line_with_the_fields(logs_context, tmp_path):
    logs, tctx = logs_context
    path = tmp_path / "sg.log"
    tctx.configure(logs, shadowgate_log_format="json", shadowgate_log_file=str(path))
    assert logs.handler in logging.getLogger().handlers
    logging.getLogger("shadowgate.test").warning("hello %s", "there", extra={"client": ("127.0.0.1", 5), "event": "x"})
    logging.getLogger("shadowgate.test").debug("below termlog_verbosity")
    [line] = [json.loads(text) for text in path.read_text().splitlines()]
    assert line["message"] == "hello there" and line["level"] == "warning" and line["logger"] == "shadowgate.test"
    assert (line["client"], line["event"]) == ("127.0.0.1:5", "x")


def record(message: str, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("mitmproxy.proxy.server", logging.INFO, __file__, 1, message, None, None)
    rec.created = 0.25
    rec.__dict__.update(extra)
    return rec


def test_json_line_keeps_extra_fields_and_stringifies_the_rest():
    line = json.loads(
        JsonFormatter().format(record("client connect", client=("10.0.0.1", 4242), when={1, 2}.__class__))
    )
    assert line == {
        "ts": "1970-01-01T00:00:00.250Z",
        "level": "info",
        "logger": "mitmproxy.proxy.server",
        "message": "client connect",
        "client": "10.0.0.1:4242",
        "when": "<class 'set'>",
    }


def test_text_line_has_date_level_and_client():
    assert TextFormatter().format(record("client connect", client=("10.0.0.1", 4242))) == (
        "1970-01-01T00:00:00.250Z INFO    [10.0.0.1:4242] client connect"
    )
    assert TextFormatter().format(record("no client")) == "1970-01-01T00:00:00.250Z INFO    no client"


def test_flow_fields_name_the_call_not_its_content():
    assert flow_fields("gateway_key_missing") == {"event": "gateway_key_missing"}
