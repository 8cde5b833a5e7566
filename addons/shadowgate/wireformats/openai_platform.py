"""OpenAI's endpoints beside the model calls: Files and Batches, Assistants (threads, messages,
runs) and audio speech. Each is recorded with its operation and model, and its body is
DLP-scanned like any other (scope.py); a run and a speech stream also report usage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from .base import RequestFacts
from .base import ResponseFacts
from .base import Route
from .common import DEFAULT_OUTPUT_TOKENS
from .common import Accumulator
from .common import JsonWireParser
from .common import as_int
from .common import batch_output_cap
from .common import body_model
from .common import body_streaming
from .common import dicts
from .common import dig
from .common import loads_lenient
from .common import nested_models
from .common import nonempty_str
from .common import openai_error
from .common import output_cap
from .common import text_chars
from .common import text_len
from .common import tool_models
from .common import uncapped_requests
from .common import usage_or_empty
from .decoding import UndecodableBody
from .multipart import is_multipart
from .multipart import parse_multipart


class _ObjectAccumulator:
    """An API object answer (file, batch, thread, message): its id, or the error envelope."""

    def __init__(self) -> None:
        self._facts = ResponseFacts()

    def on_event(self, event: str | None, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if (error := openai_error(data)) is not None:
            self._facts.error_type = error
            return
        self._facts.response_id = self._facts.response_id or nonempty_str(data.get("id"))

    def result(self) -> ResponseFacts:
        return self._facts


# Members only a model request's body has: a batch line without method and URL is one with them.
_REQUEST_KEYS = ("model", "messages", "input", "prompt", "contents")


class OpenAIFilesParser(JsonWireParser):
    """/v1/files and /v1/uploads (multipart; a batch input file is JSONL, one request a line) and
    /v1/batches (JSON naming an uploaded file). No tokens are spent until the batch runs."""

    id = "openai-files"
    prompt_keys = frozenset({"body"})  # a batch line's request

    def _looks_like(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("input_file_id"), str) and isinstance(body.get("endpoint"), str)

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        return RequestFacts(route.operation, body_model(route, body), False, 0)

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return _ObjectAccumulator()

    def batch_in_body(self, content: bytes, content_type: str) -> RequestFacts | None:
        """The requests of an uploaded JSONL batch input file (the `file` field of /v1/files, the
        `data` field of an upload's part): the batch that later runs it names only the file id,
        so this upload is the one request that shows its models (red-team F15) and what it may
        spend (F41). A line cut by an upload's part boundary is read in neither part
        (docs/threat-model.md)."""
        if is_multipart(content_type):
            try:
                parse_multipart(content, content_type)
            except UndecodableBody:
                # A server may split it where the proxy cannot: its lines' models are unknown,
                # so judged as any model (red-team F78; DLP refuses it too when on).
                return RequestFacts("upload_file", model_reference="an upload the proxy cannot split")
        lines = batch_file_lines(content, content_type)
        # A batch line names its method and URL beside its body, or (Together's, Mistral's batch
        # files: red-team F105) a custom_id beside a body that is a model request; other JSONL (an
        # e-mail export, a log) with a `body` member is no request (red-team F93).
        requests = [
            _with_default_cap(line)
            for line in lines
            if isinstance(line, dict)
            and isinstance(line.get("body"), dict)
            and (
                (isinstance(line.get("url"), str) and isinstance(line.get("method"), str))
                or ("custom_id" in line and any(key in line["body"] for key in _REQUEST_KEYS))
            )
            and not any(path in str(line.get("url")) for path in ("embeddings", "moderations"))
        ]  # an embeddings line generates no output (red-team F65)
        # Only a batch request's models run: a dataset line (a fine-tune example, an exported
        # log naming the model that wrote it) has no request body and no custom_id (round-6b G10).
        batch_lines = [line for line in lines if is_batch_line(line)]
        models = tuple(dict.fromkeys(m for line in batch_lines for m in line_models(line)))
        stored = [line for line in lines if dig(line, "body", "prompt", "id") and not dig(line, "body", "model")]
        if not models and not requests and not stored:
            return None
        facts = RequestFacts("upload_file", None, False, len(content), models)
        if stored:  # a line on a stored prompt runs the prompt's model (red-team F69)
            facts.model_reference = "a batch line on a stored prompt"
        facts.output_cap = batch_output_cap(requests) if requests else None
        facts.uncapped = uncapped_requests(requests)
        return facts


# Legacy completions generate 16 tokens when a request names no cap (the API's documented
# default for max_tokens): such a batch line is capped, not unbounded (round-6b G26).
LEGACY_COMPLETIONS_DEFAULT_CAP = 16


def _with_default_cap(line: dict) -> dict:
    body = line["body"]
    url = str(line.get("url") or "")
    if url.rstrip("/").endswith("/completions") and not url.rstrip("/").endswith("/chat/completions"):
        if output_cap(body) is None:
            return {**body, "max_tokens": LEGACY_COMPLETIONS_DEFAULT_CAP}
    return body


def batch_file_lines(content: bytes, content_type: str) -> list[Any]:
    """The JSON lines of the JSONL file a multipart upload carries (the `file` field of
    /v1/files, the `data` field of an upload's part): each a batch request, when it is a batch
    input file. A line that is not JSON is none; a body that cannot be split has none (DLP
    refuses it: bodyscan)."""
    if not is_multipart(content_type):
        return []
    try:
        parts = parse_multipart(content, content_type)
    except UndecodableBody:
        return []
    lines: list[Any] = []
    for part in parts:
        if part.name in ("file", "data"):
            text = content[part.start : part.end].decode("utf-8", "replace").removeprefix("\ufeff")
            # Split as a strict reader (\n) and as a lenient one (any line break) would.
            for line in dict.fromkeys(line.strip() for line in [*text.split("\n"), *text.splitlines()]):
                if "{" in line:
                    with contextlib.suppress(ValueError, RecursionError):
                        lines.append(loads_lenient(line))
    return lines


def is_batch_line(line: Any) -> bool:
    """Whether a JSONL line may be a batch request: it carries a request body or a custom_id
    (both required by every OpenAI-compatible Batch API). A dataset line has neither."""
    return isinstance(line, dict) and (isinstance(line.get("body"), dict) or "custom_id" in line)


def line_models(request: Any) -> list[str]:
    """A batch line's models: its request's, and those its tools or transcription run (F69)."""
    named = [nonempty_str(dig(request, "body", "model")), nonempty_str(dig(request, "model"))]
    return [m for m in named if m] + list(tool_models(dig(request, "body")))


# The output caps an eval run's sampling_params may name (the Evals API spells it
# `max_completions_tokens`; the others as the Chat Completions and Responses APIs do).
_EVAL_CAP_KEYS = ("max_completions_tokens", "max_completion_tokens", "max_output_tokens", "max_tokens")


class OpenAIEvalsParser(JsonWireParser):
    """An Evals run (`POST /v1/evals/{id}/runs`): it runs its data source's model over every item
    of its source, like a batch (red-team F96). Its bound is the items times the sampling cap;
    an uncapped run, or one whose items are in a file or a stored-completions query the proxy
    does not read, has none (Decide refuses it under a token or USD budget). A `jsonl` source
    grades outputs already made: no generation, an ordinary call."""

    id = "openai-evals"
    prompt_keys = frozenset({"input_messages", "template", "content", "text"})

    def _looks_like(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("data_source"), dict)

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        source = dig(body, "data_source")
        model = nonempty_str(dig(source, "model"))
        others = tuple(m for m in nested_models(body) if m != model)
        facts = RequestFacts(route.operation, model, False, _prompt_chars(dig(source, "input_messages")), others)
        if dig(source, "type") == "jsonl" and model is None:
            return facts
        caps = [dig(source, "sampling_params", key) for key in _EVAL_CAP_KEYS]
        cap = max((c for c in caps if isinstance(c, int) and not isinstance(c, bool) and c >= 0), default=None)
        items = dig(source, "source", "content")
        if dig(source, "source", "type") != "file_content" or not isinstance(items, list):
            kind = nonempty_str(dig(source, "source", "type")) or "unknown"
            facts.unbounded = f"the eval run's items are in a {kind[:40]} source the proxy does not read"
            return facts
        if cap is None:
            facts.uncapped = max(1, len(items))
        facts.output_cap = len(items) * (cap if cap is not None else DEFAULT_OUTPUT_TOKENS)
        return facts

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return _ObjectAccumulator()


def _prompt_chars(node: Any) -> int:
    """Characters of an eval run's prompt template: its messages' text (roles are structure)."""
    if isinstance(node, dict):
        return sum(
            len(v) if k in ("content", "text") and isinstance(v, str) else _prompt_chars(v) for k, v in node.items()
        )
    if isinstance(node, list):
        return sum(_prompt_chars(item) for item in node)
    return 0


class _RunAccumulator:
    """A run object (usage once it completed), or a run's event stream: thread.run.* events
    carry the run, thread.message.delta events the generated text."""

    def __init__(self) -> None:
        self._facts = ResponseFacts()

    def on_event(self, event: str | None, data: Any) -> None:
        if not isinstance(data, dict):
            return
        facts = self._facts
        if (error := openai_error(data)) is not None:
            facts.error_type = error
            return
        kind = data.get("object")
        if kind == "thread.message.delta":
            for part in dicts(dig(data, "delta", "content")):
                facts.output_chars += text_len(dig(part, "text", "value"))
        elif kind == "thread.run":
            facts.response_id = nonempty_str(data.get("id")) or facts.response_id
            facts.model = nonempty_str(data.get("model")) or facts.model
            if (status := nonempty_str(data.get("status"))) in ("completed", "failed", "cancelled", "expired"):
                reason = nonempty_str(dig(data, "incomplete_details", "reason"))
                facts.finish_reasons = [reason or status]
            usage = data.get("usage")
            if isinstance(usage, dict):
                facts.usage = usage_or_empty(
                    as_int(usage.get("prompt_tokens")),
                    as_int(usage.get("completion_tokens")),
                    cached=as_int(dig(usage, "prompt_tokens_details", "cached_tokens")),
                )
        elif facts.response_id is None:
            facts.response_id = nonempty_str(data.get("id"))

    def result(self) -> ResponseFacts:
        return self._facts


class OpenAIAssistantsParser(JsonWireParser):
    """Assistants API (beta): assistants, threads, messages and runs; a run generates tokens."""

    id = "openai-assistants"
    prompt_keys = frozenset(
        {"instructions", "additional_instructions", "messages", "additional_messages", "content", "text",
         "output", "tool_outputs", "description"}
    )  # fmt: skip
    system_keys = frozenset({"instructions", "additional_instructions"})

    def _looks_like(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("assistant_id"), str)

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        chars = text_chars(dig(body, "instructions")) + text_chars(dig(body, "additional_instructions"))
        for key in ("messages", "additional_messages"):
            chars += sum(text_chars(m.get("content")) for m in dicts(dig(body, key)))
        chars += sum(text_chars(m.get("content")) for m in dicts(dig(body, "thread", "messages")))
        chars += text_chars(dig(body, "content"))  # one message added to a thread
        return RequestFacts(route.operation, body_model(route, body), body_streaming(route, body), chars)

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return _RunAccumulator()


class _SpeechAccumulator:
    """Speech answers audio bytes (nothing to read) or, with stream_format "sse", events whose
    speech.audio.done carries the usage."""

    def __init__(self) -> None:
        self._facts = ResponseFacts()

    def on_event(self, event: str | None, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if (error := openai_error(data)) is not None:
            self._facts.error_type = error
        elif data.get("type") == "speech.audio.done" and isinstance(usage := data.get("usage"), dict):
            self._facts.usage = usage_or_empty(as_int(usage.get("input_tokens")), as_int(usage.get("output_tokens")))

    def result(self) -> ResponseFacts:
        return self._facts


class OpenAISpeechParser(JsonWireParser):
    id = "openai-speech"
    prompt_keys = frozenset({"input", "instructions"})
    system_keys = frozenset({"instructions"})

    def _looks_like(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("model"), str) and isinstance(body.get("voice"), str | dict)

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        chars = text_chars(dig(body, "input")) + text_chars(dig(body, "instructions"))
        facts = RequestFacts(route.operation, body_model(route, body), True, chars)
        # tts-1 and tts-1-hd are billed per character of input (red-team F59).
        facts.billed_unit, facts.billed_units = "character", text_chars(dig(body, "input"))
        return facts

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return _SpeechAccumulator()


class _MediaAccumulator(_ObjectAccumulator):
    """An image or video answer: gpt-image-1 reports its tokens, the others nothing; the row's
    cost comes from the request (images x price, seconds x price)."""

    def on_event(self, event: str | None, data: Any) -> None:
        super().on_event(event, data)
        if isinstance(data, dict) and self._facts.error_type is None:
            self._facts.model = nonempty_str(data.get("model")) or self._facts.model
            if isinstance(usage := data.get("usage"), dict):
                self._facts.usage = usage_or_empty(
                    as_int(usage.get("input_tokens")), as_int(usage.get("output_tokens"))
                )


# What OpenAI bills when a request leaves it out (API reference, images and videos).
_IMAGE_MODEL_DEFAULT = "dall-e-2"
# "Defaults to dall-e-2 unless a parameter specific to gpt-image-1 is used" (API reference): these
# are gpt-image-1's own, so a call naming one runs it (red-team F76).
_GPT_IMAGE_MODEL = "gpt-image-1"
_GPT_IMAGE_ONLY = frozenset({"output_format", "output_compression", "background", "moderation", "partial_images"})
_GPT_IMAGE_QUALITIES = frozenset({"high", "medium", "low", "auto"})
_VIDEO_SECONDS_DEFAULT = 4


class OpenAIMediaParser(JsonWireParser):
    """Image generation (/v1/images/generations) and video (/v1/videos): billed per image (by
    size and quality) and per second of video, so their quantity is read for the price (F59)."""

    id = "openai-media"
    prompt_keys = frozenset({"prompt"})
    system_keys = frozenset()

    def _looks_like(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("prompt"), str)

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        model = body_model(route, body)
        facts = RequestFacts(route.operation, model, False, text_chars(dig(body, "prompt")))
        fields = body if isinstance(body, dict) else {}
        if route.operation == "generate_video":
            seconds = fields.get("seconds", _VIDEO_SECONDS_DEFAULT)
            with contextlib.suppress(TypeError, ValueError):
                facts.billed_unit, facts.billed_units = "video_second", max(0.0, float(seconds))
            return facts
        quality_named = str(fields.get("quality", "")).lower()
        uses_gpt_image = bool(_GPT_IMAGE_ONLY & fields.keys()) or quality_named in _GPT_IMAGE_QUALITIES
        facts.model = model or (_GPT_IMAGE_MODEL if uses_gpt_image else _IMAGE_MODEL_DEFAULT)
        count = fields.get("n", 1)
        size = nonempty_str(fields.get("size")) or "1024x1024"
        quality = nonempty_str(fields.get("quality")) or "*"
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            facts.billed_unit, facts.billed_units = f"image:{size.lower()}:{quality.lower()}", count
        return facts

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return _MediaAccumulator()


# Seconds of audio guessed from a file's size when the answer does not say: 4 000 bytes a
# second is 32 kbit/s, below what speech is usually sent at (MP3 64-128 kbit/s, WAV 256 kbit/s),
# so the guess errs high (a low-bitrate Opus file, 16 kbit/s, is under-counted by half).
AUDIO_BYTES_PER_SECOND = 4000


class _TranscriptionAccumulator(_ObjectAccumulator):
    """A transcription: whisper-1 says the audio's length (usage {"type": "duration", "seconds"},
    verbose_json "duration"); gpt-4o-transcribe reports tokens."""

    def on_event(self, event: str | None, data: Any) -> None:
        super().on_event(event, data)
        if not isinstance(data, dict) or self._facts.error_type is not None:
            return
        usage = data.get("usage")
        if isinstance(usage, dict) and usage.get("type") == "duration":
            seconds = usage.get("seconds")
        elif isinstance(usage, dict):
            self._facts.usage = usage_or_empty(as_int(usage.get("input_tokens")), as_int(usage.get("output_tokens")))
            seconds = data.get("duration")
        else:
            seconds = data.get("duration")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
            self._facts.billed_units = float(seconds)


class OpenAITranscriptionParser(JsonWireParser):
    """/v1/audio/transcriptions and /translations: a multipart upload of audio, billed per second
    (whisper-1): the answer's duration, else a guess from the file's size (red-team F59)."""

    id = "openai-transcription"
    prompt_keys = frozenset({"prompt"})
    system_keys = frozenset()

    def _looks_like(self, body: dict[str, Any]) -> bool:
        return False  # multipart, never JSON: only its path routes it

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        return RequestFacts(route.operation, body_model(route, body), False, 0)

    def batch_in_body(self, content: bytes, content_type: str) -> RequestFacts | None:
        if not is_multipart(content_type):
            return None
        try:
            parts = parse_multipart(content, content_type)
        except UndecodableBody:
            return None
        facts = RequestFacts("transcription")
        named: list[str] = []
        for part in parts:
            if part.name == "model":
                # Form parsers take the first value (Werkzeug, Go) or the last (Starlette): every
                # one is judged, the last recorded (red-team F77).
                if value := content[part.start : part.end].decode("utf-8", "replace").strip():
                    named.append(value)
                facts.model = named[-1] if named else None
                facts.other_models = tuple(dict.fromkeys(named[:-1]))
            elif part.name == "file":
                facts.billed_unit = "audio_second"
                facts.billed_units = float(-(-(part.end - part.start) // AUDIO_BYTES_PER_SECOND))
        return facts

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return _TranscriptionAccumulator()


__all__ = [
    "OpenAIAssistantsParser",
    "OpenAIFilesParser",
    "OpenAIMediaParser",
    "OpenAISpeechParser",
    "OpenAITranscriptionParser",
    "batch_file_lines",
]
