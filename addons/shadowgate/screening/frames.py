"""Screening WebSocket AI sessions: which strings of a realtime message are what.

A WebSocket session (OpenAI Realtime, Gemini Live, a chat app such as Microsoft Copilot) carries
one JSON event per message. On the client side, client_texts() lists each string a model will
read with who wrote it (screening/prompts.py kinds): what the user types (`conversation.item.create`
`input_text`, Gemini `clientContent` / `realtimeInput` text, Copilot `send` content) as a prompt,
tool output carried back (`function_call_output`, Gemini `toolResponse`) as a tool result, and
instructions (`session.update`, `response.create`, Gemini `systemInstruction`) as the system
prompt. Audio and other media (base64) are never text.

On the server side, ServerFrames runs the answer inspection over the model's text as it streams:
the text, transcript and tool-argument deltas of each output (OpenAI `response.output_text.delta`,
`response.output_audio_transcript.delta`, `response.function_call_arguments.delta` and their
older names; Gemini `serverContent.modelTurn` text and `outputTranscription`; Copilot `appendText`)
are joined per output through a TextGuard with the bounded hold-back, so a value split across
messages is inspected whole before any of it goes out. A message that ends an output (an OpenAI
`.done` event, a Gemini turn without text, any other Copilot event) releases what is held first,
as a copy of that output's last delta. The `.done` events repeat the whole text: each output's
text there is replaced by exactly what went out in its deltas (so a redaction holds and nothing
is counted twice); text that never streamed is inspected whole, and so is every string of an event
in none of these shapes (a SignalR hub message, a plain-text message). Pure: no mitmproxy.

A message nested deeper than MAX_DEPTH raises TooDeep on either side rather than going out
unread: the caller treats it as content it cannot inspect (refused under `on_error: block`).
Stopping quietly there let a payload nested one level deeper pass unscreened.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from collections.abc import Hashable
from collections.abc import Iterator
from typing import Any

from .answers import TextGuard
from .prompts import PROMPT
from .prompts import SYSTEM
from .prompts import TOOL_RESULT

# Keys whose strings are structure or media, never text a person or model wrote.
_NOT_TEXT = frozenset(
    {"type", "event", "event_id", "id", "item_id", "call_id", "previous_item_id", "response_id", "role", "model",
     "voice", "status", "object", "name", "audio", "data", "mimeType", "mime_type", "format", "modalities",
     "output_modalities", "tool_choice", "conversationId", "messageId", "partId", "mode", "clientSessionId"}
)  # fmt: skip
_SYSTEM_KEYS = frozenset({"instructions", "systemInstruction", "system_instruction"})
_TOOL_TYPES = frozenset({"function_call_output", "mcp_call_output"})
_TOOL_KEYS = frozenset({"toolResponse", "functionResponses", "functionResponse", "tool_response"})
# Realtime events nest a few levels; Copilot's adaptive cards some more. Beyond this, TooDeep.
MAX_DEPTH = 64


class TooDeep(ValueError):
    """A message nested deeper than MAX_DEPTH: not screened, so never passed as screened."""

    def __init__(self) -> None:
        super().__init__(f"the message is nested more than {MAX_DEPTH} levels deep")


def _deeper(node: Any, depth: int) -> None:
    """Raise TooDeep for text or structure past MAX_DEPTH (a number or null there says nothing)."""
    if depth > MAX_DEPTH and isinstance(node, (str, list, dict)) and node:
        raise TooDeep


def client_texts(body: Any) -> list[tuple[str, str]]:
    """(kind, text) for every string of a client message a model will read, in order; raises
    TooDeep for one nested past MAX_DEPTH."""
    found: list[tuple[str, str]] = []

    def walk(node: Any, kind: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            _deeper(node, depth)
            return
        if isinstance(node, str):
            if node:
                found.append((kind, node))
        elif isinstance(node, list):
            for item in node:
                walk(item, kind, depth + 1)
        elif isinstance(node, dict):
            here = TOOL_RESULT if kind == PROMPT and node.get("type") in _TOOL_TYPES else kind
            for key, value in node.items():
                if key in _NOT_TEXT:
                    continue
                inner = here
                if key in _SYSTEM_KEYS:
                    inner = SYSTEM
                elif key in _TOOL_KEYS and here == PROMPT:
                    inner = TOOL_RESULT
                walk(value, inner, depth + 1)

    walk(body, PROMPT, 0)
    return found


# --- the server side ------------------------------------------------------------------------------

_OPENAI_TEXT_DELTAS = frozenset(
    {"response.text.delta", "response.output_text.delta", "response.audio_transcript.delta",
     "response.output_audio_transcript.delta"}
)  # fmt: skip
_OPENAI_ARGUMENT_DELTAS = frozenset({"response.function_call_arguments.delta", "response.mcp_call_arguments.delta"})
_FULL_KEYS = ("text", "transcript", "arguments")


class Delta:
    """A piece of streamed answer text: container[key], and the output (slot) it continues."""

    __slots__ = ("container", "key", "slot")

    def __init__(self, container: dict[str, Any], key: str, slot: Hashable) -> None:
        self.container = container
        self.key = key
        self.slot = slot


def server_deltas(event: Any) -> list[Delta] | None:
    """The answer-text pieces of one server event; None for an event that ends outputs (what is
    held is released before it); [] for one that neither carries text nor ends anything."""
    if not isinstance(event, dict):
        return []
    kind = event.get("type")
    if isinstance(kind, str):  # OpenAI Realtime
        if kind in _OPENAI_TEXT_DELTAS and isinstance(event.get("delta"), str):
            return [Delta(event, "delta", ("text", event.get("item_id"), event.get("content_index", 0)))]
        if kind in _OPENAI_ARGUMENT_DELTAS and isinstance(event.get("delta"), str):
            return [Delta(event, "delta", ("args", event.get("item_id") or event.get("call_id")))]
        if kind.endswith(".delta"):
            return []  # audio, and the user's own speech transcribed: not answer text
        item = event.get("item")
        if kind.startswith("conversation.item.") and isinstance(item, dict):
            # The model's items come back whole (`conversation.item.done`, `.retrieved`); the
            # user's own items echoed back are not the model's answer.
            mine = item.get("role") in ("user", "system") or item.get("type") == "function_call_output"
            return [] if mine else None
        return None if kind.startswith("response.") or kind == "error" else []
    if event.get("event") is not None:  # Microsoft Copilot
        if event.get("event") == "appendText" and isinstance(event.get("text"), str):
            return [Delta(event, "text", ("copilot", event.get("messageId"), event.get("partId")))]
        return None
    content = event.get("serverContent")
    if isinstance(content, dict):  # Gemini Live
        found = []
        parts = content.get("modelTurn", {}).get("parts") if isinstance(content.get("modelTurn"), dict) else None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                found.append(Delta(part, "text", ("gemini", "thought" if part.get("thought") else "text")))
        transcript = content.get("outputTranscription")
        if isinstance(transcript, dict) and isinstance(transcript.get("text"), str):
            found.append(Delta(transcript, "text", ("gemini", "transcript")))
        return found or None
    return None if "toolCall" in event else []


def _full_texts(event: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str, Hashable]]:
    """Whole output texts an OpenAI event repeats: (container, key, the slot its deltas used)."""
    kind = event.get("type")
    item_id = event.get("item_id")
    if kind in ("response.text.done", "response.output_text.done"):
        yield event, "text", ("text", item_id, event.get("content_index", 0))
    elif kind in ("response.audio_transcript.done", "response.output_audio_transcript.done"):
        yield event, "transcript", ("text", item_id, event.get("content_index", 0))
    elif kind in ("response.function_call_arguments.done", "response.mcp_call_arguments.done"):
        yield event, "arguments", ("args", item_id or event.get("call_id"))
    elif kind in ("response.content_part.done", "response.content_part.added") and isinstance(event.get("part"), dict):
        for key in ("text", "transcript"):
            yield event["part"], key, ("text", item_id, event.get("content_index", 0))
    items: list[Any] = []
    if isinstance(event.get("item"), dict):
        items = [event["item"]]
    elif isinstance(event.get("response"), dict) and isinstance(event["response"].get("output"), list):
        items = event["response"]["output"]
    for item in items:
        if not isinstance(item, dict):
            continue
        yield item, "arguments", ("args", item.get("id") or item.get("call_id"))
        for index, part in enumerate(item.get("content") or ()):
            if isinstance(part, dict):
                for key in ("text", "transcript"):
                    yield part, key, ("text", item.get("id"), index)


class ServerFrames:
    """The model's side of one session through answer inspection (see the module docstring).

    feed(event) returns the events to send in its place, in order: held text released as copies
    of earlier deltas, then the event itself, rewritten in place (a delta whose text is all held
    goes out empty). The callables are the answer inspection's (stages/answer.py): `inspect(text)`
    finds, `rewrite(text, findings)` counts, redacts, and raises to block; what they raise
    propagates (the caller cuts the session)."""

    def __init__(
        self, inspect: Callable[[str], list[Any]], rewrite: Callable[[str, list[Any]], str], hold: int
    ) -> None:
        self._inspect = inspect
        self._rewrite = rewrite
        self._hold = hold
        self._guards: dict[Hashable, TextGuard] = {}
        # The last event of each output, with all of that event's deltas: a release copies it.
        self._last: dict[Hashable, tuple[dict[str, Any], list[Delta], Delta]] = {}
        self._sent: dict[Hashable, list[str]] = {}  # what went out of each output, for `.done`
        self.changed = False  # whether the last feed() changed anything

    @property
    def held(self) -> int:
        return sum(g.held for g in self._guards.values())

    def feed(self, event: Any) -> list[Any]:
        self.changed = False
        deltas = server_deltas(event)
        if not deltas and _unknown_shape(event):
            self._walk(event, set(), 0)  # no protocol this knows (a SignalR hub, plain text): all text
            return [event]
        if deltas is None:
            released = self.flush()
            self._whole(event)
            if not _is_openai(event):  # a turn (Gemini) or a message (Copilot) ended: start afresh
                self._guards.clear()
                self._last.clear()
            return [*released, event]
        for delta in deltas:
            guard = self._guards.get(delta.slot)
            if guard is None:
                guard = self._guards[delta.slot] = TextGuard(self._inspect, self._rewrite, hold=self._hold)
            piece = delta.container[delta.key]
            text, _ = guard.feed(piece)
            if text != piece:
                delta.container[delta.key] = text
                self.changed = True
            if _is_openai(event):  # only OpenAI repeats the text in `.done` events
                self._sent.setdefault(delta.slot, []).append(text)
            self._last[delta.slot] = (event, deltas, delta)
        return [event]

    def flush(self) -> list[Any]:
        """Release every held text, each as a copy of its output's last event."""
        out = []
        for slot, guard in self._guards.items():
            if not guard.held:
                continue
            text, _ = guard.finish()
            event, siblings, delta = self._last[slot]
            if _is_openai(event):
                self._sent.setdefault(slot, []).append(text)
            before = [(d, d.container[d.key]) for d in siblings]
            for other in siblings:  # the copy carries this output's text only
                other.container[other.key] = ""
            delta.container[delta.key] = text
            out.append(copy.deepcopy(event))
            self.changed = True
            for d, value in before:
                d.container[d.key] = value
        return out

    def _whole(self, event: Any) -> None:
        """An event that ends outputs: repeated texts become what went out, the rest is inspected."""
        done: set[tuple[int, Any]] = set()
        if isinstance(event, dict) and isinstance(event.get("type"), str):
            for container, key, slot in list(_full_texts(event)):
                if isinstance(container.get(key), str) and slot in self._sent:
                    sent = "".join(self._sent[slot])
                    if sent != container[key]:
                        container[key] = sent
                        self.changed = True
                    done.add((id(container), key))
            if event.get("type") == "response.done":
                self._guards.clear()
                self._last.clear()
                self._sent.clear()
        self._walk(event, done, 0)

    def _walk(self, node: Any, done: set[tuple[int, Any]], depth: int) -> None:
        if depth > MAX_DEPTH:
            _deeper(node, depth)  # raises: the caller cuts the session under on_error: block
            return
        pairs = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in list(pairs):
            if isinstance(node, dict) and (key in _NOT_TEXT or key in _ANSWER_STRUCTURE):
                continue
            if isinstance(value, str):
                if value and (id(node), key) not in done:
                    findings = self._inspect(value)
                    if findings:
                        node[key] = self._rewrite(value, findings)
                        self.changed = self.changed or node[key] != value
            else:
                self._walk(value, done, depth + 1)


# The top-level keys of Gemini Live's server messages (BidiGenerateContentServerMessage).
_GEMINI_KEYS = frozenset(
    {"setupComplete", "serverContent", "toolCall", "toolCallCancellation", "usageMetadata", "goAway",
     "sessionResumptionUpdate"}
)  # fmt: skip


def _unknown_shape(event: Any) -> bool:
    """An event of none of the protocols above (OpenAI's typed events, Copilot's, Gemini's)."""
    if not isinstance(event, dict):
        return True
    return not (isinstance(event.get("type"), str) or "event" in event or not _GEMINI_KEYS.isdisjoint(event))


def _is_openai(event: Any) -> bool:
    return isinstance(event, dict) and isinstance(event.get("type"), str)


_ANSWER_STRUCTURE = frozenset({"finish_reason", "stop_reason", "status_details", "reason", "object", "conversation_id"})
