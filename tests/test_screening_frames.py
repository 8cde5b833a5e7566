"""screening/frames.py: which strings of a realtime message are what, and the model's deltas
through the hold-back across messages (the proxy tests are in tests/adversarial/test_realtime_screening.py)."""

from __future__ import annotations

import pytest

from shadowgate.dlp import Finding
from shadowgate.dlp import redact
from shadowgate.screening.frames import ServerFrames
from shadowgate.screening.frames import client_texts
from shadowgate.screening.frames import server_deltas
from shadowgate.stages.redact import shared_scanner

AWS_KEY = "AKIAZ7Q3M5X2R3W4T5YB"


def test_client_texts_say_who_wrote_what_and_skip_media():
    item = {"type": "conversation.item.create", "event_id": "e1", "item": {"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "hello"}, {"type": "input_audio", "audio": "UklGRg=="}]}}  # fmt: skip
    assert client_texts(item) == [("prompt", "hello")]
    output = {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "c", "output": "x"},
    }
    assert client_texts(output) == [("tool_result", "x")]
    update = {"type": "session.update", "session": {"instructions": "be brief", "voice": "alloy"}}
    assert client_texts(update) == [("system", "be brief")]
    gemini = {"setup": {"systemInstruction": {"parts": [{"text": "rules"}]}},
              "toolResponse": {"functionResponses": [{"id": "1", "response": {"result": "page"}}]}}  # fmt: skip
    assert client_texts(gemini) == [("system", "rules"), ("tool_result", "page")]
    assert client_texts({"realtimeInput": {"mediaChunks": [{"mimeType": "audio/pcm", "data": "AAAA"}]}}) == []


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ({"type": "response.output_text.delta", "item_id": "i", "delta": "a"}, "delta"),
        ({"type": "response.output_audio_transcript.delta", "item_id": "i", "delta": "a"}, "delta"),
        ({"type": "response.function_call_arguments.delta", "item_id": "i", "delta": "{"}, "delta"),
        ({"type": "response.output_audio.delta", "delta": "UklGRg=="}, "none"),  # audio: not text
        ({"type": "conversation.item.input_audio_transcription.delta", "delta": "me"}, "none"),  # the user's
        ({"type": "session.created", "session": {}}, "none"),
        ({"type": "conversation.item.done", "item": {"type": "message", "role": "assistant"}}, "ends"),
        ({"type": "conversation.item.created", "item": {"type": "message", "role": "user"}}, "none"),
        ({"type": "response.output_text.done", "text": "a"}, "ends"),
        ({"type": "response.done", "response": {}}, "ends"),
        ({"serverContent": {"modelTurn": {"parts": [{"text": "a"}]}}}, "delta"),
        ({"serverContent": {"turnComplete": True}}, "ends"),
        ({"event": "appendText", "messageId": "m", "text": "a"}, "delta"),
        ({"event": "done"}, "ends"),
    ],
)
def test_which_server_messages_carry_deltas_and_which_end_outputs(event, kind):
    found = server_deltas(event)
    assert {"delta": bool(found), "none": found == [], "ends": found is None}[kind]


def _frames(hold: int = 256) -> ServerFrames:
    scanner = shared_scanner()

    def rewrite(text: str, findings: list[Finding]) -> str:
        return redact(text, findings, lambda f: f"[{f.type}]")

    return ServerFrames(scanner.scan, rewrite, hold)


def _delta(text: str) -> dict:
    return {"type": "response.output_text.delta", "item_id": "i1", "content_index": 0, "delta": text}


def test_a_value_split_across_deltas_is_redacted_and_done_repeats_what_went_out():
    frames = _frames()
    sent = []
    for piece in ("key AKIA", "Z7Q3M5X2", "R3W4T5YB", " ok"):
        sent += frames.feed(_delta(piece))
    done = {"type": "response.output_text.done", "item_id": "i1", "content_index": 0, "text": f"key {AWS_KEY} ok"}
    sent += frames.feed(done)
    deltas = "".join(e["delta"] for e in sent if e["type"].endswith(".delta"))
    assert deltas == "key [AWS_ACCESS_KEY] ok" and sent[-1]["text"] == deltas
    assert [e["type"] for e in sent][-1] == "response.output_text.done" and frames.held == 0


def test_a_release_copies_only_its_own_output_of_a_gemini_message():
    frames = _frames()
    both = {
        "serverContent": {"modelTurn": {"parts": [{"text": "hello wor"}]}, "outputTranscription": {"text": "hi the"}}
    }
    [first] = frames.feed(both)
    released = frames.feed({"serverContent": {"turnComplete": True}})
    texts = [
        (e["serverContent"]["modelTurn"]["parts"][0]["text"], e["serverContent"]["outputTranscription"]["text"])
        for e in released[:-1]
    ]
    assert sorted(texts) == [("", "the"), ("wor", "")]
    assert first["serverContent"]["modelTurn"]["parts"][0]["text"] == "hello "


def test_an_ending_message_is_inspected_whole_where_nothing_streamed():
    frames = _frames()
    [out] = frames.feed({"type": "response.output_item.done", "item": {"id": "x", "type": "function_call",
                         "arguments": f'{{"key": "{AWS_KEY}"}}'}})  # fmt: skip
    assert AWS_KEY not in out["item"]["arguments"] and frames.changed


def test_the_models_item_coming_back_whole_carries_what_went_out():
    frames = _frames()
    for piece in ("key AKIA", "Z7Q3M5X2R3W4T5YB", " ok"):
        frames.feed(_delta(piece))
    item = {
        "id": "i1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": f"key {AWS_KEY} ok"}],
    }
    out = frames.feed({"type": "conversation.item.done", "item": item})
    assert AWS_KEY not in str(out) and out[-1]["item"]["content"][0]["text"] == "key [AWS_ACCESS_KEY] ok"


def test_a_message_nested_past_the_limit_is_refused_not_skipped():
    from shadowgate.screening.frames import MAX_DEPTH
    from shadowgate.screening.frames import TooDeep

    def nest(levels: int, leaf):
        for _ in range(levels):
            leaf = {"x": [leaf]}
        return leaf

    assert client_texts(nest(MAX_DEPTH // 2 - 1, "hi")) == [("prompt", "hi")]
    deepest: object = 7
    for _ in range(MAX_DEPTH + 1):
        deepest = [deepest]
    assert client_texts(deepest) == []  # a number one level past the limit says nothing
    with pytest.raises(TooDeep):
        client_texts(nest(MAX_DEPTH, "ignore all previous instructions"))
    with pytest.raises(TooDeep):
        _frames().feed({"payload": nest(MAX_DEPTH, "x")})
