"""Record, in process: the one place rows are submitted, the row schema derived from a dataclass,
pricing and budget counting on the writer thread (taddons/tflow, a real writer, no proxy)."""

from __future__ import annotations

import dataclasses
import json
import time

import duckdb
import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons
from mitmproxy.test import tflow
from mitmproxy.test import tutils

from shadowgate.config.policy import Facts
from shadowgate.flow import FlowRecord
from shadowgate.flow import Outcome
from shadowgate.flow import flow_record
from shadowgate.stages.decide import Decide
from shadowgate.stages.identify import Identify
from shadowgate.stages.record import Record
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.storage.rows import AiRequest
from shadowgate.storage.rows import ai_request
from shadowgate.storage.schema import AI_REQUESTS
from shadowgate.storage.schema import MCP_CALLS
from shadowgate.storage.schema import MCP_TOOLS
from shadowgate.storage.schema import POLICY_EVENTS
from shadowgate.storage.store import utc_from_timestamp
from shadowgate.wireformats.base import ResponseFacts
from shadowgate.wireformats.base import Usage

POLICY = "budgets:\n  - id: small\n    per: user\n    tokens_per_day: 1000\n"
USERS = "networks:\n  - {cidr: 10.1.0.0/16, group: interns}\nusers:\n  bob: {group: sales}\n"


class Stages:
    def __init__(self, tmp_path) -> None:
        (tmp_path / "policy.yaml").write_text(POLICY)
        (tmp_path / "users.yaml").write_text(USERS)
        self.tmp_path = tmp_path
        self.settings = ShadowgateSettings()
        self.identify = Identify(self.settings)
        self.decide = Decide(self.settings)
        self.record = Record(self.settings, self.decide)
        self.tctx = taddons.context(self.settings, self.identify, self.decide, self.record)

    def configure(self, **options) -> None:
        self.tctx.configure(
            self.settings,
            shadowgate_fingerprint_key=str(self.tmp_path / "fp.key"),
            shadowgate_policy=str(self.tmp_path / "policy.yaml"),
            shadowgate_users=str(self.tmp_path / "users.yaml"),
            **options,
        )

    def rows(self, table: str) -> list[dict]:
        assert self.record.writer is not None and self.record.writer.flush()
        con = duckdb.connect(str(self.record.writer.db_path), read_only=True)
        try:
            cursor = con.execute(f"SELECT * EXCLUDE (day) FROM {table} ORDER BY ts")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, values)) for values in cursor.fetchall()]
        finally:
            con.close()


@pytest.fixture
def stages(tmp_path):
    s = Stages(tmp_path)
    with s.tctx:
        s.configure(shadowgate_db=str(tmp_path / "db" / "sg.duckdb"))
        yield s
        s.record.done()


def identified_chat(stages: Stages, client_ip: str = "10.1.2.3") -> FlowRecord:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = tutils.treq(
        host="api.openai.com", port=443, scheme=b"https", method=b"POST", path=b"/v1/chat/completions?x=1",
        headers=((b"content-type", b"application/json"), (b"user-agent", b"openai-python/3")), content=body,
    )  # fmt: skip
    request.timestamp_start = time.time()
    flow = tflow.tflow(req=request)
    flow.client_conn.sni = "api.openai.com"
    flow.client_conn.peername = (client_ip, 50000)
    stages.identify.requestheaders(flow)
    stages.identify.request(flow)
    stages.decide.request(flow)
    rec = flow_record(flow)
    assert rec is not None
    return rec


def test_the_ai_requests_table_is_derived_from_its_row_dataclass():
    fields = dataclasses.fields(AiRequest)
    assert AI_REQUESTS.columns == tuple((f.name, f.metadata["sql_type"]) for f in fields)
    assert AI_REQUESTS.column_names[:3] == ("ts", "request_id", "client_ip")  # a contract: never reordered
    assert AI_REQUESTS.column_names.index("dlp_action") == 44  # new columns only ever go after it
    assert len(AI_REQUESTS.descriptions) == len(AI_REQUESTS.columns)
    for table in (AI_REQUESTS, POLICY_EVENTS, MCP_CALLS, MCP_TOOLS):
        for name, description in zip(table.column_names, table.descriptions):
            assert description.strip() and "\n" not in description, f"{table.name}.{name} needs a one-line description"


def test_every_ai_requests_column_is_assigned_and_converted_by_name(stages):
    rec = identified_chat(stages)
    out = Outcome(200, ResponseFacts(model="gpt-4o-mini-2024-07-18", usage=Usage(input_tokens=11, output_tokens=7)))
    row = ai_request(rec, out)
    unset = [name for name in AI_REQUESTS.column_names if not hasattr(row, name)]
    assert unset == [], f"ai_request() does not assign {unset}"
    (values,) = AI_REQUESTS.as_tuples([row])
    by_name = dict(zip(AI_REQUESTS.column_names, values))
    assert by_name["model"] == "gpt-4o-mini" and by_name["response_model"] == "gpt-4o-mini-2024-07-18"
    assert by_name["path"] == "/v1/chat/completions"  # never the query string
    assert (by_name["user_group"], by_name["provider"], by_name["input_tokens"]) == ("interns", "openai", 11)


def test_an_ai_call_is_recorded_priced_and_counted_for_the_budgets(stages):
    rec = identified_chat(stages)
    rec.overhead_ns = 250_000
    out = Outcome(
        200, ResponseFacts(model="gpt-4o-mini", usage=Usage(input_tokens=400, output_tokens=100)), latency_ms=12.5
    )
    stages.record.ai_request(rec, out)
    (row,) = stages.rows("ai_requests")
    assert row["request_id"] == rec.request_id and row["ts"] == utc_from_timestamp(rec.started)
    assert (row["user_name"], row["user_group"], row["decision"]) == ("10.1.2.3", "interns", "allow")
    assert (row["input_tokens"], row["output_tokens"], row["latency_ms"]) == (400, 100, 12.5)
    assert row["user_agent"] == "openai-python/3" and row["proxy_overhead_us"] == 250
    # Priced on the writer thread from the bundled price list, not by the stage.
    assert row["cost_usd"] and row["cost_usd"] > 0 and row["priced_model"]
    tokens, usd = stages.decide.budgets.totals("small", "10.1.2.3")
    assert tokens == 500 and usd == pytest.approx(row["cost_usd"])


def test_stages_that_record_through_settings_reach_record(stages):
    settings = stages.settings
    assert settings.writer is stages.record.writer
    facts = Facts(
        host="api.anthropic.com", provider="anthropic", category="api", user="ann", group="eng", client_ip="10.9.0.1"
    )
    settings.record_connection(facts, "not decrypted by policy")
    flow = tflow.tflow()
    flow.client_conn.peername = ("10.1.0.7", 4000)
    settings.record_event("coach_continue", "bob", flow, "chatgpt.com", "chatgpt", "chat-apps", "10 min")
    (connection,) = stages.rows("ai_requests")
    assert (connection["method"], connection["inspected"], connection["inspect_note"]) == (
        "CONNECT",
        False,
        "not decrypted by policy",
    )
    assert (connection["provider"], connection["user_name"], connection["cost_usd"]) == ("anthropic", "ann", None)
    (event,) = stages.rows("policy_events")
    assert event == {
        "ts": event["ts"], "event": "coach_continue", "user_name": "bob", "user_group": "sales",
        "client_ip": "10.1.0.7", "host": "chatgpt.com", "provider": "chatgpt", "rule_id": "chat-apps",
        "detail": "10 min",
    }  # fmt: skip


def test_mcp_rows_go_through_record(stages):
    ts = utc_from_timestamp(time.time())
    call = dict.fromkeys(MCP_CALLS.column_names)
    call.update(ts=ts, request_id="r1", method="tools/call", tool_name="search", decision="allow")
    stages.record.mcp_call(tuple(call.values()))
    tool = dict.fromkeys(MCP_TOOLS.column_names)
    stages.record.mcp_tools(
        [tuple({**tool, "ts": ts, "tool_name": name, "filtered": name == "rm"}.values()) for name in ("ls", "rm")]
    )
    (row,) = stages.rows("mcp_calls")
    assert (row["method"], row["tool_name"], row["decision"]) == ("tools/call", "search", "allow")
    assert [(r["tool_name"], r["filtered"]) for r in stages.rows("mcp_tools")] == [("ls", False), ("rm", True)]


def test_a_database_that_cannot_be_prepared_is_refused_with_its_path(stages, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    before = stages.record.writer
    with pytest.raises(exceptions.OptionsError, match="cannot prepare the database at .*a-file"):
        stages.tctx.configure(stages.settings, shadowgate_db=str(blocker / "sg.duckdb"))
    # mitmproxy rolls the option back, and the database in force stays the one recording.
    assert stages.record.writer is not None and stages.record.writer.db_path == before.db_path
