"""Uploads, identify: what OpenAI uploads hold beyond any one request.

1. A batch input file uploaded too large to read (over shadowgate_max_parse_bytes, red-team
   F79): the upload passes (most large uploads are documents, F82), and the proxy remembers the
   id the provider's answer gives the file when that answer says `purpose: batch`; a batch
   naming it has no bound a token or USD budget can hold, so Decide refuses it under one
   (RequestFacts.unbounded). An Upload with a part too large to read gives its file the same.

2. An Upload's part boundaries. The Uploads API sends a file in parts (`POST /v1/uploads/{id}/parts`, each its own request,
up to 64 MB) and joins them in the order `POST /v1/uploads/{id}/complete` names (`part_ids`).
Each part is scanned and its batch lines judged as it passes, but a JSONL line or a secret cut by
the boundary between two parts was in neither whole: a batch line's model escaped the model
rules and a key split in two escaped DLP. So the proxy keeps the edges of every part it
forwarded (the bytes around its first and last line break, bounded) and, at the complete, reads
each seam in the order given: the line across it is judged as a batch line (its models join the
call's, before Decide), and the text around it is scanned by Redact with the body's (a value
found there cannot be redacted in the stored file: the complete is refused).

A part this process did not forward (another instance's, or one forgotten after
SEAM_MEMORY_BYTES of newer parts) leaves its seams unread (docs/threat-model.md). Parts over
shadowgate_max_parse_bytes are not kept either; under DLP or a model rule they are refused whole.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import replace

from mitmproxy import http

from shadowgate.config.requestpath import path_readings
from shadowgate.flow import HOLD_ANSWER_KEY
from shadowgate.flow import FlowRecord
from shadowgate.flow import RecentIds
from shadowgate.flow import flow_record
from shadowgate.flow import timed_hook
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.wireformats.base import RequestFacts
from shadowgate.wireformats.common import json_unescaped
from shadowgate.wireformats.common import loads_lenient
from shadowgate.wireformats.decoding import UndecodableBody
from shadowgate.wireformats.multipart import is_multipart
from shadowgate.wireformats.multipart import parse_multipart
from shadowgate.wireformats.openai_platform import line_models

# The services that take OpenAI's Uploads: OpenAI's, Azure OpenAI's and the OpenAI-compatible
# Batch APIs' (red-team F105).
_UPLOAD_FORMATS = frozenset({"openai-platform", "openai-batch", "azure-openai"})
_UPLOAD_PATH = re.compile(r"(?:/[^?#]*)?/uploads/([^/]+)/(parts|complete)/?", re.IGNORECASE)
EDGE_BYTES = 8 * 1024  # text kept on each side of a seam for DLP: more than any secret
LINE_BYTES = 256 * 1024  # the longest line cut by a seam that is read whole (a batch line)
SEAM_MEMORY_BYTES = 64 * 1024 * 1024  # all parts' edges, the oldest forgotten first
ANSWER_HELD_BYTES = 64 * 1024  # an Upload object is a few hundred bytes
UNREAD_IDS_MAX = 10_000  # file and upload ids remembered as unread, the oldest forgotten first
SEAM_TEXT_KEY = "shadowgate_upload_seams"  # flow.metadata: the complete's seams, for Redact


class PartEdges:
    """A part's first and last bytes: up to its first line break (at least EDGE_BYTES), and from
    its last one (the same), each at most LINE_BYTES; cut: a line at an edge was longer than that."""

    __slots__ = ("cut", "head", "tail")

    def __init__(self, data: bytes) -> None:
        first = data.find(b"\n", 0, LINE_BYTES)
        last = data.rfind(b"\n", max(0, len(data) - LINE_BYTES))
        self.head = data[: max(EDGE_BYTES, first + 1 if first >= 0 else LINE_BYTES)]
        start = min(len(data) - EDGE_BYTES, last if last >= 0 else len(data) - LINE_BYTES)
        self.tail = data[max(0, start) :]
        self.cut = len(data) > LINE_BYTES and (first < 0 or last < 0)

    @property
    def size(self) -> int:
        return len(self.head) + len(self.tail)


class Uploads:
    name = "shadowgate_uploads"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings
        self.parts: OrderedDict[tuple[str, str], PartEdges] = OrderedDict()
        self.kept_bytes = 0
        # Batch input files uploaded too large to read (red-team F79): a batch naming one has no
        # bound a budget can hold. And the Uploads a part of which was too large to read.
        self.unread_files = RecentIds(UNREAD_IDS_MAX)
        self.unread_uploads = RecentIds(UNREAD_IDS_MAX)

    @timed_hook
    def request(self, flow: http.HTTPFlow) -> None:
        rec = flow_record(flow)
        if rec is None or flow.response is not None:
            return
        if rec.route is not None and rec.route.operation == "create_batch":
            self._batch(rec)
            return
        target = _upload_target(flow, rec)
        if target is not None and target[1] == "complete":
            self._complete(flow, rec, target[0])

    def _batch(self, rec: FlowRecord) -> None:
        body = rec.parsed_body[1] if rec.parsed_body is not None else None
        file_id = body.get("input_file_id") if isinstance(body, dict) else None
        if isinstance(file_id, str) and file_id in self.unread_files:
            facts = rec.facts or RequestFacts("create_batch")
            rec.facts = replace(facts, unbounded=f"its input file {file_id} was uploaded too large to read")

    def _complete(self, flow: http.HTTPFlow, rec: FlowRecord, upload_id: str) -> None:
        body = _json(flow.request.get_content(strict=False) or b"")
        part_ids = body.get("part_ids") if isinstance(body, dict) else None
        if not isinstance(part_ids, list):
            return
        edges = [self.parts.get((upload_id, str(part_id))) for part_id in part_ids]
        pairs = [(left, right) for left, right in zip(edges, edges[1:], strict=False) if left and right]
        if not pairs:
            return
        seams = [left.tail + right.head for left, right in pairs]
        flow.metadata[SEAM_TEXT_KEY] = [seam.decode("utf-8", "replace") for seam in seams]
        models: list[str] = []
        for left, right in pairs:
            # Only the line across the boundary: the whole lines on either side were judged when
            # their part passed.
            line = (left.tail.splitlines() or [b""])[-1] + (right.head.splitlines() or [b""])[0]
            if left.tail.endswith((b"\n", b"\r")) or right.head.startswith((b"\n", b"\r")):
                continue  # the boundary falls between lines: nothing is cut
            if b"{" in line and (value := _json(line)) is not None:
                models += line_models(value)
        # A batch file's lines name their URL: a line cut where the edges end is a batch line
        # when the file is one.
        batch = any(e is not None and (_batch_like(e.head) or _batch_like(e.tail)) for e in edges)
        cut = batch and any(left.cut or right.cut for left, right in pairs)
        if models or cut:
            facts = rec.facts or RequestFacts("upload_file")
            rec.facts = replace(facts, other_models=tuple(dict.fromkeys((*facts.other_models, *models))))
            if cut:  # a batch line longer than the edges kept: its model is unknown
                rec.facts.model_reference = "a batch line cut by an upload's part boundary, too long to read"

    @timed_hook
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # The complete has no route, so Meter would stream its answer unread: hold it (a small
        # Upload object) when it names the file of an Upload with an unread part.
        target = _upload_target(flow, flow_record(flow))
        response = flow.response
        if target is None or target[1] != "complete" or target[0] not in self.unread_uploads or response is None:
            return
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) <= ANSWER_HELD_BYTES:
            flow.metadata[HOLD_ANSWER_KEY] = True

    @timed_hook
    def response(self, flow: http.HTTPFlow) -> None:
        rec = flow_record(flow)
        response = flow.response
        if rec is None or response is None or not 200 <= response.status_code < 300 or response.stream:
            return
        unread = bool(flow.request.stream) or rec.body_unread
        target = _upload_target(flow, rec)
        if target is None:
            if unread and rec.route is not None and rec.route.operation == "upload_file":
                self._unread_file(_json(response.get_content(strict=False) or b""))
            return
        upload_id, step = target
        if step == "complete":
            if upload_id in self.unread_uploads:
                answer = _json(response.get_content(strict=False) or b"")
                self._unread_file(answer.get("file") if isinstance(answer, dict) else None)
        elif unread:
            self.unread_uploads.add(upload_id)
        else:
            self._keep_edges(flow, upload_id, _json(response.get_content(strict=False) or b""))

    def _unread_file(self, answer: object) -> None:
        """Remember an uploaded file the proxy could not read, if it is a batch's input."""
        if isinstance(answer, dict) and answer.get("purpose") == "batch" and isinstance(answer.get("id"), str):
            self.unread_files.add(answer["id"])

    def _keep_edges(self, flow: http.HTTPFlow, upload_id: str, answer: object) -> None:
        part_id = answer.get("id") if isinstance(answer, dict) else None
        data = _part_data(flow.request)
        if not isinstance(part_id, str) or data is None:
            return
        edges = PartEdges(data)
        key = (upload_id, part_id)
        old = self.parts.pop(key, None)
        self.kept_bytes += edges.size - (old.size if old else 0)
        self.parts[key] = edges
        while self.kept_bytes > SEAM_MEMORY_BYTES and self.parts:
            _, dropped = self.parts.popitem(last=False)
            self.kept_bytes -= dropped.size


def _upload_target(flow: http.HTTPFlow, rec: FlowRecord | None) -> tuple[str, str] | None:
    """(upload id, "parts" | "complete") for a POST to an OpenAI Upload's parts or complete."""
    if rec is None or rec.provider is None or not _UPLOAD_FORMATS & set(rec.provider.wire_formats):
        return None
    path = flow.request.path.lower()
    if flow.request.method.upper() != "POST" or ("uploads" not in path and "%" not in path):
        return None  # the common call, without normalising its path
    for reading in path_readings(flow.request.path):
        if match := _UPLOAD_PATH.fullmatch(reading):
            return match.group(1), match.group(2).lower()
    return None


def _part_data(request: http.Request) -> bytes | None:
    """The `data` field of a part's multipart body, as forwarded (after any redaction)."""
    content_type = request.headers.get("content-type", "")
    content = request.get_content(strict=False)
    if not content or not is_multipart(content_type):
        return None
    try:
        parts = parse_multipart(content, content_type)
    except UndecodableBody:
        return None
    return next((content[p.start : p.end] for p in parts if p.name == "data"), None)


def _batch_like(edge: bytes) -> bool:
    """Whether a part's edge holds a batch line's keys, escaped or not (`"\u0075rl"` is the same
    key to a JSON reader: red-team F122; OpenAI-compatible batch lines name a custom_id, no url)."""
    text = json_unescaped(edge.decode("utf-8", "replace"))
    return any(key in text for key in ('"url"', '"custom_id"'))


def _json(raw: bytes) -> object:
    try:
        return loads_lenient(raw.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None
