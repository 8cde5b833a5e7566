"""Redact mode and a secret in a value a repeated key shadows (red-team finding F2).

`{"content":"key AKIA...","content":"hi"}`: Python's json keeps the last value, a first-wins
parser upstream the first. DLP scans both, but the redacted copy holds each key once, so a
redaction made only in the shadowed value left the copy equal to the body, and the original
bytes, key included, went out while the row said `redact`. Now the bytes sent are written anew
(each key once, no secret) whenever a redaction was decided; a redaction that cannot change the
bytes refuses the request. Through a real mitmdump to the fake upstream and the WebSocket one.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.adversarial.test_realtime import ws_policy  # noqa: F401 (a fixture)
from tests.adversarial.test_realtime import ws_proxy  # noqa: F401
from tests.adversarial.test_realtime import ws_upstream  # noqa: F401
from tests.adversarial.wire import marker
from tests.support.wsclient import ws_ssl_context

AWS = "AKIA2OGYBAH6STMMNXNN"
REDACT = "dlp: {secrets: redact, pii: log}\n"


def _post(proxy, user, body: str):
    mark = marker()
    with proxy.client(user) as client:
        answer = client.post(
            "https://api.openai.com/v1/chat/completions",
            content=body.encode(),
            headers={"x-attack": mark, "authorization": "Bearer sk-test", "content-type": "application/json"},
        )
    return answer, mark


def _seen(upstream, mark):
    return [s for s in upstream.seen if s.headers.get("x-attack") == mark]


def _keys_once(raw: bytes) -> dict:
    """The JSON of the bytes sent, checking that no object names a key twice."""

    def once(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"a key sent twice: {keys}"
        return dict(pairs)

    return json.loads(raw, object_pairs_hook=once)


@pytest.mark.parametrize(
    "body",
    [
        '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"key KEY","content":"hi"}]}',
        '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"key KEY"}],'
        '"messages":[{"role":"user","content":"hi"}]}',
        '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"key KEY","content":"and KEY"}]}',
    ],
    ids=["first-content", "first-messages", "both"],
)
def test_a_secret_in_a_shadowed_duplicate_is_not_sent(proxy_with, upstream, body):
    proxy = proxy_with(REDACT)
    user = f"rd-{marker()[:6]}"
    answer, mark = _post(proxy, user, body.replace("KEY", AWS))
    assert answer.status_code == 200
    [seen] = _seen(upstream, mark)
    assert AWS.encode() not in seen.body, "the original bytes, key included, went upstream"
    sent = _keys_once(seen.body)
    assert sent["model"] == "gpt-4o-mini" and sent["messages"][0]["role"] == "user"
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["dlp_action"] == "redact" and "AWS_ACCESS_KEY" in row["dlp_findings"]


def test_a_secret_in_the_last_duplicate_is_redacted_where_it_is(proxy_with, upstream):
    proxy = proxy_with(REDACT)
    body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi","content":"key KEY"}]}'.replace("KEY", AWS)
    answer, mark = _post(proxy, "rd-last", body)
    [seen] = _seen(upstream, mark)
    sent = _keys_once(seen.body)
    assert sent["messages"][0]["content"] == "key [AWS_ACCESS_KEY_1]"


def test_duplicates_without_a_finding_pass_as_they_came(proxy_with, upstream):
    proxy = proxy_with(REDACT)
    body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello","content":"hi"}]}'
    answer, mark = _post(proxy, "rd-clean", body)
    [seen] = _seen(upstream, mark)
    assert seen.body == body.encode()


# --- Realtime WebSocket frames ------------------------------------------------------------------


def test_a_realtime_frame_with_the_secret_in_a_shadowed_text_key_is_rewritten(ws_policy, ws_upstream):  # noqa: F811
    proxy = ws_policy(REDACT)
    user = "rd-ws"
    tag = marker()
    event = (
        (
            '{"type":"conversation.item.create","item":{"type":"message","role":"user","content":'
            '[{"type":"input_text","text":"key KEY","text":"hello TAG"}]}}'
        )
        .replace("KEY", AWS)
        .replace("TAG", tag)
    )
    url = "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    with connect(url, proxy=proxy.url(user), ssl=ws_ssl_context(proxy)) as ws:
        assert json.loads(ws.recv(5))["type"] == "session.created"
        ws.send(event)
        ws.send(json.dumps({"type": "response.create"}))
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            while json.loads(ws.recv(5))["type"] != "response.done":
                pass
    [sent] = [m for m in ws_upstream.received if tag in m]
    assert AWS not in sent, "the original frame, key included, went to the provider"
    assert _keys_once(sent.encode())["item"]["content"][0] == {"type": "input_text", "text": f"hello {tag}"}
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["dlp_action"] == "redact" and "AWS_ACCESS_KEY" in row["dlp_findings"]
