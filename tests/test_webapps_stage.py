"""Chat web apps through the stages in process (taddons/tflow, a real writer, no proxy): what counts
as an AI call, what web_activity records, policy on activity and account, DLP on web prompts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import pytest
from mitmproxy import http
from mitmproxy.test import taddons
from mitmproxy.test import tflow
from mitmproxy.test import tutils

from shadowgate.stages.act import Act
from shadowgate.stages.decide import Decide
from shadowgate.stages.identify import Identify
from shadowgate.stages.meter import Meter
from shadowgate.stages.record import Record
from shadowgate.stages.redact import Redact
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.stages.webapps import WebApps
from shadowgate.stages.webapps import WebAppsDlp

FIXTURES = Path(__file__).parent / "fixtures" / "webapps"
AWS_KEY = "AKIAZ7Q3M5X2R3W4T5YB"
WORKSPACE = "ws-4f1c0000-aaaa-bbbb-cccc-000000000001"


class Pipeline:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.settings = ShadowgateSettings()
        self.decide = Decide(self.settings)
        self.record = Record(self.settings, self.decide)
        self.webapps = WebApps(self.settings)
        act = Act(self.settings, self.decide)
        self.addons = [
            self.settings, Identify(self.settings), self.webapps, self.decide, act,
            WebAppsDlp(self.settings, self.decide, self.webapps, act), Redact(self.settings),
            Meter(self.settings, self.record), self.record,
        ]  # fmt: skip
        self.tctx = taddons.context(*self.addons)

    def policy(self, text: str) -> None:
        path = self.tmp_path / "policy.yaml"
        path.write_text(text)
        self.tctx.configure(self.settings, shadowgate_policy=str(path))

    def send(self, fixture: str | dict, user: str = "alice", answer: bytes = b"data: {}\n\n", **edit) -> http.HTTPFlow:
        spec = json.loads((FIXTURES / f"{fixture}.json").read_text()) if isinstance(fixture, str) else fixture
        req = {**spec["request"], **edit}
        body = (
            json.dumps(req["json"], separators=(",", ":")).encode() if "json" in req else req.get("body", "").encode()
        )
        request = tutils.treq(
            host=req["host"], port=443, scheme=b"https", method=req["method"].encode(), path=req["path"].encode(),
            headers=tuple((k.encode(), v.encode()) for k, v in req["headers"].items()), content=body,
        )  # fmt: skip
        request.timestamp_start = time.time()
        flow = tflow.tflow(req=request)
        flow.client_conn.sni = req["host"]
        flow.client_conn.peername = ("10.0.0.7", 50000)
        flow.metadata["proxyauth"] = (user, "pw")
        for hook in ("requestheaders", "request"):
            for addon in self.addons:
                if hasattr(addon, hook):  # mitmproxy calls every addon, a response set or not
                    getattr(addon, hook)(flow)
        if flow.response is None:
            flow.response = tutils.tresp(
                status_code=200, content=answer, headers=((b"content-type", b"text/event-stream"),)
            )
            self.upstream_saw = flow.request.get_content()
        else:
            self.upstream_saw = None
        for hook in ("responseheaders", "response"):
            for addon in self.addons:
                if hasattr(addon, hook):
                    getattr(addon, hook)(flow)
        return flow

    def rows(self, table: str, where: str = "true") -> list[dict]:
        assert self.record.writer is not None and self.record.writer.flush()
        con = duckdb.connect(str(self.record.writer.db_path), read_only=True)
        try:
            cursor = con.execute(f"SELECT * EXCLUDE (day) FROM {table} WHERE {where} ORDER BY ts")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, values)) for values in cursor.fetchall()]
        finally:
            con.close()


@pytest.fixture
def pipe(tmp_path):
    p = Pipeline(tmp_path)
    with p.tctx:
        p.tctx.configure(
            p.settings,
            shadowgate_fingerprint_key=str(tmp_path / "fp.key"),
            shadowgate_db=str(tmp_path / "db" / "sg.duckdb"),
        )
        yield p
        p.record.done()


def test_a_prompt_is_one_ai_request_and_telemetry_is_none(pipe: Pipeline) -> None:
    pipe.send("chatgpt-prompt", user="p1")
    for noise in ("chatgpt-sentinel", "chatgpt-telemetry", "chatgpt-prepare", "gemini-batchexecute", "deepseek-pow"):
        pipe.send(noise, user="p1")
    [row] = pipe.rows("ai_requests", "user_name = 'p1'")
    assert (row["category"], row["operation"], row["model"], row["path"]) == (
        "chat-web", "chat", "auto", "/backend-api/f/conversation"
    )  # fmt: skip
    assert row["usage_estimated"] and row["input_tokens"] == len("Summarise the attached quarterly report") // 4 + 1
    activity = pipe.rows("web_activity", "user_name = 'p1'")
    assert [(a["endpoint"], a["activity"]) for a in activity] == [
        ("chatgpt.prompt", "prompt"), ("chatgpt.prepare", "other")
    ]  # fmt: skip
    prompt = activity[0]
    assert prompt["request_id"] == row["request_id"]
    assert prompt["account_kind"] == "unknown"  # the policy names no workspace
    assert prompt["account_fingerprint"].startswith("hmac:") and WORKSPACE not in json.dumps(prompt, default=str)
    assert prompt["conversation_fingerprint"].startswith("hmac:")
    assert (prompt["text_chars"], prompt["file_type"], prompt["file_count"]) == (39, "csv", 1)
    assert prompt["parse_status"] == "ok" and prompt["status_code"] == 200


def test_rules_match_activity_and_account(pipe: Pipeline) -> None:
    pipe.policy(
        f"accounts: {{chatgpt: {{workspace_ids: [{WORKSPACE}]}}}}\n"
        "rules:\n"
        "  - {id: no-uploads, match: {category: chat-web, activity: upload, file_type: [xlsx, csv]}, action: block,"
        " message: No spreadsheets}\n"
        "  - {id: no-anon, match: {provider: chatgpt, account: [anonymous, personal]}, action: block}\n"
    )
    flow = pipe.send("chatgpt-upload-announce", user="r1")
    assert flow.response.status_code == 403 and pipe.upstream_saw is None
    assert "No spreadsheets" in json.loads(flow.response.content)["detail"]  # ChatGPT's own error shape
    flow = pipe.send("chatgpt-prompt-anon", user="r1")
    assert flow.response.status_code == 403 and "no-anon" in json.loads(flow.response.content)["detail"]
    flow = pipe.send("chatgpt-prompt", user="r1")
    assert flow.response.status_code == 200
    rows = pipe.rows("web_activity", "user_name = 'r1'")
    assert [(r["endpoint"], r["account_kind"], r["decision"], r["rule_id"]) for r in rows] == [
        ("chatgpt.upload-announce", "personal", "block", "no-uploads"),
        ("chatgpt.prompt", "anonymous", "block", "no-anon"),
        ("chatgpt.prompt", "corporate", "allow", "default"),
    ]
    # Uploads are no AI calls; the two prompts are, the refused one included.
    assert [r["decision"] for r in pipe.rows("ai_requests", "user_name = 'r1'")] == ["block", "allow"]


def _with_secret(name: str, where: str) -> dict:
    spec = json.loads((FIXTURES / f"{name}.json").read_text())
    text = json.dumps(spec).replace(where, f"{where} aws_access_key_id={AWS_KEY}", 1)
    return json.loads(text)


@pytest.mark.parametrize(
    ("fixture", "where"),
    [
        ("chatgpt-prompt", "Summarise the attached quarterly report"),
        ("claude-prompt", "Either party may terminate"),  # an inline file's text
        ("perplexity-prompt", 'who owns acme corp"'),  # the first of the two text fields
        ("deepseek-prompt", "explain this stack trace"),
        ("grok-prompt", "rate our pricing page"),
        ("poe-prompt", "compare these vendors"),
        ("le-chat-prompt", "plan the offsite"),
    ],
)
def test_a_planted_secret_in_a_web_prompt_is_blocked_by_default(pipe: Pipeline, fixture: str, where: str) -> None:
    pipe.policy("dlp: {secrets: redact, pii: log}\n")  # redact is not proven on web apps: it blocks
    flow = pipe.send(_with_secret(fixture, where.rstrip('"')), user="d-" + fixture)
    assert flow.response.status_code == 403 and pipe.upstream_saw is None
    assert "AWS_ACCESS_KEY" in flow.response.get_text() and AWS_KEY not in flow.response.get_text()
    [row] = pipe.rows("web_activity", f"user_name = 'd-{fixture}'")
    assert (row["dlp_findings"], row["dlp_action"], row["status_code"]) == ("AWS_ACCESS_KEY:1", "block", 403)


def test_gemini_prompt_secret_is_blocked_inside_the_nested_form(pipe: Pipeline) -> None:
    pipe.policy("dlp: {secrets: block}\n")
    spec = json.loads((FIXTURES / "gemini-prompt.json").read_text())
    spec["request"]["body"] = spec["request"]["body"].replace("Translate+this+memo", f"Translate+{AWS_KEY}+memo")
    flow = pipe.send(spec, user="g1")
    assert flow.response.status_code == 403
    [row] = pipe.rows("web_activity", "user_name = 'g1'")
    assert (row["endpoint"], row["dlp_action"], row["parse_status"]) == ("gemini-app.prompt", "block", "ok")


def test_redaction_is_written_back_only_where_the_catalog_allows_it(pipe: Pipeline) -> None:
    pipe.policy("dlp: {secrets: redact}\n")
    endpoint = next(e for e in pipe.webapps.apps.apps["chatgpt"].endpoints if e.id == "chatgpt.prompt")
    object.__setattr__(endpoint, "rewrite_ok", True)
    try:
        flow = pipe.send(_with_secret("chatgpt-prompt", "Summarise the attached quarterly report"), user="w1")
    finally:
        object.__setattr__(endpoint, "rewrite_ok", False)
    assert flow.response.status_code == 200
    sent = json.loads(pipe.upstream_saw)
    assert sent["messages"][0]["content"]["parts"][1] == (
        "Summarise the attached quarterly report aws_access_key_id=[AWS_ACCESS_KEY_1]"
    )
    assert AWS_KEY.encode() not in pipe.upstream_saw
    [row] = pipe.rows("web_activity", "user_name = 'w1'")
    assert row["dlp_action"] == "redact"


def test_uploaded_text_files_are_scanned(pipe: Pipeline) -> None:
    pipe.policy("dlp: {secrets: block}\n")
    spec = json.loads((FIXTURES / "chatgpt-upload-bytes.json").read_text())
    spec["request"]["body"] += f"aws_access_key_id={AWS_KEY}\n"
    flow = pipe.send(spec, user="u1")
    assert flow.response.status_code == 403 and pipe.upstream_saw is None
    [row] = pipe.rows("web_activity", "user_name = 'u1'")
    assert (row["endpoint"], row["activity"], row["dlp_action"]) == ("chatgpt.upload-bytes", "upload", "block")
    assert pipe.rows("ai_requests", "user_name = 'u1'") == []


def test_a_prompt_whose_text_moved_is_still_scanned(pipe: Pipeline) -> None:
    pipe.policy("dlp: {secrets: block}\n")
    spec = json.loads((FIXTURES / "claude-prompt.json").read_text())
    body = spec["request"]["json"]
    body["query"] = body.pop("prompt") + f" {AWS_KEY}"  # a renamed field
    flow = pipe.send(spec, user="m1")
    assert flow.response.status_code == 403
    [row] = pipe.rows("web_activity", "user_name = 'm1'")
    assert row["parse_status"] == "no-text" and row["dlp_action"] == "block"


def test_a_blocked_page_visit_is_recorded(pipe: Pipeline) -> None:
    pipe.policy("rules:\n  - {id: no-chat, match: {provider: claude}, action: block}\n")
    nav = {
        "request": {"method": "GET", "host": "claude.ai", "path": "/new",
                    "headers": {"sec-fetch-mode": "navigate", "accept": "text/html"}},
    }  # fmt: skip
    flow = pipe.send(nav, user="v1")
    assert flow.response.status_code == 403
    [row] = pipe.rows("web_activity", "user_name = 'v1'")
    assert (row["app"], row["activity"], row["decision"], row["rule_id"]) == ("claude", "visit", "block", "no-chat")
    assert pipe.rows("ai_requests", "user_name = 'v1'") == []


def test_a_renamed_prompt_endpoint_is_still_scanned_but_tokens_are_not(pipe: Pipeline) -> None:
    pipe.policy("dlp: {secrets: block, pii: block}\n")
    spec = _with_secret("chatgpt-prompt", "Summarise the attached quarterly report")
    flow = pipe.send(spec, user="n1", path="/backend-api/g/conversation")  # a path the catalog does not know yet
    assert flow.response.status_code == 403 and pipe.upstream_saw is None
    [row] = pipe.rows("web_activity", "user_name = 'n1'")
    assert (row["endpoint"], row["activity"], row["parse_status"], row["dlp_action"]) == (
        "unmatched", "other", "unparsed", "block"
    )  # fmt: skip
    assert pipe.rows("ai_requests", "user_name = 'n1'") == []
    # Anti-bot tokens and ids carry no text: a false finding there would break the app, so they pass.
    token = {"request": {"method": "POST", "host": "chatgpt.com", "path": "/backend-api/sentinel/chat-requirements",
             "headers": {"content-type": "application/json"}, "json": {"p": f"gAAAAAB{AWS_KEY}eyJhbGciOi"}}}  # fmt: skip
    assert pipe.send(token, user="n2").response.status_code == 200
    assert pipe.rows("web_activity", "user_name = 'n2'") == []


def test_a_coached_prompt_shows_the_interstitial_on_the_next_navigation(pipe: Pipeline) -> None:
    pipe.policy("rules:\n  - {id: personal-coach, match: {provider: chatgpt, account: personal}, action: coach}\n")
    nav = {"request": {"method": "GET", "host": "chatgpt.com", "path": "/",
                       "headers": {"sec-fetch-mode": "navigate", "accept": "text/html"}}}  # fmt: skip
    assert pipe.send(nav, user="c1").response.status_code == 200 and pipe.upstream_saw is not None  # no account yet
    prompt = pipe.send("chatgpt-prompt-old-path-personal", user="c1")
    assert prompt.response.status_code == 200  # a fetch cannot click: coach.api allows it
    page = pipe.send(nav, user="c1")
    assert page.response.status_code == 200 and pipe.upstream_saw is None
    assert "Before you continue" in page.response.get_text() and "personal-coach" in page.response.get_text()
    assert pipe.send(nav, user="c1").response.status_code == 200 and pipe.upstream_saw is not None  # once
    rows = pipe.rows("web_activity", "user_name = 'c1'")
    assert [(r["endpoint"], r["decision"]) for r in rows] == [("chatgpt.prompt", "coach"), ("visit", "coach")]


def test_a_copilot_prompt_frame_is_one_row(pipe: Pipeline) -> None:
    from mitmproxy import websocket

    flow = tflow.twebsocketflow()
    flow.request.host = "copilot.microsoft.com"
    flow.request.path = "/c/api/chat?api-version=2&clientSessionId=s1"
    flow.client_conn.sni = "copilot.microsoft.com"
    flow.metadata["proxyauth"] = ("ws1", "pw")
    dlp = next(a for a in pipe.addons if isinstance(a, WebAppsDlp))
    frames = [
        {"event": "setOptions", "supportedCards": ["image"]},
        {"event": "send", "conversationId": "conv-42", "content": [{"type": "text", "text": "draft a reply"}],
         "mode": "smart"},
    ]  # fmt: skip
    for frame in frames:
        flow.websocket.messages.append(websocket.WebSocketMessage(1, True, json.dumps(frame).encode()))
        dlp.websocket_message(flow)
    flow.websocket.messages.append(websocket.WebSocketMessage(1, False, b'{"event":"appendText","text":"ok"}'))
    dlp.websocket_message(flow)
    [row] = pipe.rows("web_activity", "user_name = 'ws1'")
    assert (row["endpoint"], row["activity"], row["transport"], row["text_chars"], row["model"]) == (
        "microsoft-copilot.prompt", "prompt", "websocket", 13, "smart"
    )  # fmt: skip
