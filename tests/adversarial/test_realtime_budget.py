"""Class 4: a budget bounds one long Realtime session, not only its upgrade (red-team F23).

A session was decided once, at the upgrade, and its usage counted only when it closed: under
`tokens_per_day: 50` one session got 40 answers (600 tokens). Now each `response.done` usage
counts against the budget while the session runs, and once the subject is over it the next
client message gets an error event and nothing more reaches the provider; a `response.create`
is a request per minute too. The test WebSocket server answers each `response.create` with
15 tokens (10 in, 5 out). A real mitmdump; each test asserts what reached the provider, what the
client got and the row.
"""

from __future__ import annotations

import contextlib
import json
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.adversarial.test_realtime import ws_policy  # noqa: F401 - fixtures shared with that module
from tests.adversarial.test_realtime import ws_proxy  # noqa: F401
from tests.adversarial.test_realtime import ws_upstream  # noqa: F401
from tests.adversarial.wire import marker
from tests.support.wsclient import ws_ssl_context

URL = "wss://api.openai.com/v1/realtime?model=gpt-realtime"
CREATE = json.dumps({"type": "response.create"})


def _answers_until_refused(ws, tries: int) -> tuple[int, dict | None]:
    """(response.done events before the first error event, that error event)."""
    done = 0
    for _ in range(tries):
        ws.send(CREATE)
        while True:
            event = json.loads(ws.recv(5))
            if event.get("type") == "response.done":
                done += 1
                break
            if event.get("type") == "error":
                return done, event
    return done, None


def _session(proxy, user: str):
    """A Realtime WebSocket through the proxy as `user` (its session.created not yet read)."""
    return connect(URL, proxy=proxy.url(user), ssl=ws_ssl_context(proxy), open_timeout=10)


def _creates_since(server, before: int) -> int:
    time.sleep(0.3)  # the upstream thread logs what it got
    return sum(json.loads(m).get("type") == "response.create" for m in server.received[before:])


def test_a_token_budget_stops_one_long_session(ws_policy, ws_upstream):  # noqa: F811
    proxy = ws_policy("budgets:\n  - {id: tiny, per: user, tokens_per_day: 50}\n")
    user = "rtb-tokens-" + marker()[:6]
    before = len(ws_upstream.received)
    with _session(proxy, user) as ws:
        ws.recv(5)  # session.created
        done, error = _answers_until_refused(ws, 20)
        assert done == 4  # 0, 15, 30 and 45 tokens used before each: under 50; then 60
        assert error is not None and "tiny" in error["error"]["message"]
        ws.send(CREATE)  # dropped: the session is over its budget
        ws.send(json.dumps({"type": "conversation.item.create", "item": {"type": "message", "role": "user"}}))
    assert _creates_since(ws_upstream, before) == 4
    assert len(ws_upstream.received) - before == 4  # nothing after the refusal reached the provider
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["decision"], row["rule_id"]) == ("rate_limit", "tiny")
    assert row["input_tokens"] + row["output_tokens"] == 60
    with pytest.raises(InvalidStatus) as refused:  # the person's next session: refused at its upgrade
        _session(proxy, user)
    assert refused.value.response.status_code == 429


def test_response_create_counts_as_a_request_per_minute(ws_policy, ws_upstream):  # noqa: F811
    proxy = ws_policy("budgets:\n  - {id: rpm, per: user, requests_per_minute: 3}\n")
    user = "rtb-rpm-" + marker()[:6]
    before = len(ws_upstream.received)
    with _session(proxy, user) as ws:
        ws.recv(5)
        done, error = _answers_until_refused(ws, 10)
    assert done == 2  # the upgrade and two response.create: three requests this minute
    assert error is not None and "rpm" in error["error"]["message"]
    assert _creates_since(ws_upstream, before) == 2


def test_a_session_under_its_budget_is_untouched(ws_policy, ws_upstream):  # noqa: F811
    proxy = ws_policy("budgets:\n  - {id: roomy, per: user, tokens_per_day: 100000, requests_per_minute: 100}\n")
    user = "rtb-ok-" + marker()[:6]
    with _session(proxy, user) as ws:
        ws.recv(5)
        done, error = _answers_until_refused(ws, 10)
    assert (done, error) == (10, None)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["decision"] == "allow" and row["input_tokens"] + row["output_tokens"] == 150


def test_a_burst_of_response_create_cannot_outrun_a_token_budget(ws_policy, ws_upstream):  # noqa: F811
    # Twenty answers asked for at once (out-of-band responses run concurrently): each asked-for
    # answer now holds a reservation until its response.done, as an HTTP call in flight does
    # (red-team F50). Before, all twenty reached the provider under a 50-token budget.
    proxy = ws_policy("budgets:\n  - {id: tiny, per: user, tokens_per_day: 50}\n")
    user = "rtb-burst-" + marker()[:6]
    before = len(ws_upstream.received)
    with _session(proxy, user) as ws:
        ws.recv(5)  # session.created
        for _ in range(20):
            ws.send(CREATE)
        events = []
        with contextlib.suppress(TimeoutError):
            while True:
                events.append(json.loads(ws.recv(2)))
    assert any(e.get("type") == "error" and "tiny" in e["error"]["message"] for e in events)
    assert _creates_since(ws_upstream, before) == 1


def test_parallel_sessions_see_each_others_answers_in_flight(ws_policy, ws_upstream):  # noqa: F811
    proxy = ws_policy("budgets:\n  - {id: tiny, per: user, tokens_per_day: 50}\n")
    user = "rtb-parallel-" + marker()[:6]
    before = len(ws_upstream.received)
    sessions = [_session(proxy, user) for _ in range(4)]
    try:
        for ws in sessions:
            ws.recv(5)
        for ws in sessions:
            ws.send(CREATE)
    finally:
        time.sleep(0.5)
        for ws in sessions:
            ws.close()
    assert _creates_since(ws_upstream, before) == 1


LIVE_URL = "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent?key=k"


@pytest.mark.parametrize(
    "turn",
    [
        {"realtimeInput": {"text": "hi"}},  # a text turn of its own
        {
            "realtimeInput": {"mediaChunks": [{"mimeType": "audio/pcm;rate=16000", "data": "AAAA"}]}
        },  # voice: the server decides
    ],
    ids=["text", "audio"],
)
def test_live_realtime_input_turns_count_as_requests_per_minute(ws_policy, ws_upstream, turn):  # noqa: F811
    # Only clientContent counted: ten realtimeInput turns were all answered under 3 a minute (red-team F53).
    proxy = ws_policy("budgets:\n  - {id: rpm, per: user, requests_per_minute: 3}\n")
    user = "rtb-live-" + marker()[:6]
    answered, refused = 0, None
    with connect(LIVE_URL, proxy=proxy.url(user), ssl=ws_ssl_context(proxy), open_timeout=10) as ws:
        ws.send(json.dumps({"setup": {"model": "models/gemini-live-2.5-flash-preview"}}))
        ws.recv(5)  # setupComplete
        for _ in range(10):
            ws.send(json.dumps(turn))
            event = json.loads(ws.recv(5))
            if "error" in event:
                refused = event
                break
            answered += "serverContent" in event
            while "turnComplete" not in json.dumps(event):  # the rest of the answer
                event = json.loads(ws.recv(5))
    # The upgrade, the setup that names the model (decided anew) and one turn: three this minute.
    assert answered == 1
    assert refused is not None and "rpm" in json.dumps(refused)


def _sent_after_a_full_minute(proxy, upstream, user: str, message: dict, first: dict | None = None) -> list[dict]:
    """What reached the provider of `message`, sent once a session used up 2 requests a minute."""
    before = len(upstream.received)
    with _session(proxy, user) as ws:
        ws.recv(5)
        if first is not None:
            ws.send(json.dumps(first))
        done, error = _answers_until_refused(ws, 3)
        assert done == 1 and error is not None and "rpm" in error["error"]["message"]
        ws.send(json.dumps(message))
        time.sleep(0.5)
    return [m for raw in upstream.received[before:] if (m := json.loads(raw)).get("type") == message["type"]]


def test_a_full_minute_refuses_the_next_ask_not_the_session(ws_policy, ws_upstream):  # noqa: F811
    # A tool's output asks for nothing: it goes on under a full window, and the session lives on
    # (red-team F73: every later message was dropped for the life of the session).
    proxy = ws_policy("budgets:\n  - {id: rpm, per: user, requests_per_minute: 2}\n")
    output = {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "c1", "output": "42"},
    }
    assert _sent_after_a_full_minute(proxy, ws_upstream, "rtb-rpm-live-" + marker()[:6], output)


def test_live_history_turns_ask_for_no_answer():
    # clientContent without turnComplete only adds context: counted as a request (and an answer
    # pending), seeding history used the minute up before the question (red-team F86). The test
    # server answers every clientContent, so this is the rule itself, not a session.
    from shadowgate.stages.realtime import _asks_for_answer

    history = {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "earlier"}]}]}}
    assert not _asks_for_answer(history)
    assert not _asks_for_answer({"clientContent": {**history["clientContent"], "turnComplete": False}})
    assert _asks_for_answer({"clientContent": {**history["clientContent"], "turnComplete": True}})
    assert _asks_for_answer({"type": "response.create"}) and _asks_for_answer({"realtimeInput": {"text": "hi"}})


def test_push_to_talk_audio_is_no_turn_at_a_full_minute(ws_policy, ws_upstream):  # noqa: F811
    # With turn detection off, audio is sent ahead of the request that asks for its answer: at a
    # full window it was dropped, so the next turn was answered without it (red-team F94).
    proxy = ws_policy("budgets:\n  - {id: rpm, per: user, requests_per_minute: 2}\n")
    push_to_talk = {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
    }
    audio = {"type": "input_audio_buffer.append", "audio": "AAAA"}
    assert _sent_after_a_full_minute(proxy, ws_upstream, "rtb-ptt-" + marker()[:6], audio, first=push_to_talk)


def test_a_contradictory_update_leaves_turn_detection_on_at_a_full_minute(ws_policy, ws_upstream):  # noqa: F811
    # `turn_detection: null` beside a GA `audio.input.turn_detection` that detects turns: the GA
    # server reads the latter, so audio still becomes turns it answers (red-team F107).
    proxy = ws_policy("budgets:\n  - {id: rpm, per: user, requests_per_minute: 2}\n")
    mixed = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "turn_detection": None,
            "audio": {"input": {"turn_detection": {"type": "server_vad"}}},
        },
    }
    audio = {"type": "input_audio_buffer.append", "audio": "AAAA"}
    assert not _sent_after_a_full_minute(proxy, ws_upstream, "rtb-mixed-" + marker()[:6], audio, first=mixed)


def test_live_tool_responses_and_activity_ends_ask_for_an_answer():
    # The model goes on after a tool response, and the end of a push-to-talk turn is answered:
    # neither counted as a request per minute (red-team F114). The rule itself, as above.
    from shadowgate.stages.realtime import _asks_for_answer

    tool = {"toolResponse": {"functionResponses": [{"id": "c1", "name": "f", "response": {"ok": True}}]}}
    assert _asks_for_answer(tool)
    assert _asks_for_answer({"realtimeInput": {"activityEnd": {}}})
    assert not _asks_for_answer({"realtimeInput": {"activityStart": {}}})
