"""multipart/form-data request bodies (RFC 7578): file uploads, audio, batch JSONL.

DLP reads each part's text: form fields, and files whose bytes are text (a JSONL batch file, a
.txt or .csv upload), whatever Content-Type the part claims. Binary files (images, audio, PDFs)
carry no text to match and pass as they are. A body that does not parse as multipart, or a part
in a transfer or content coding, cannot be read as the upstream will read it: UndecodableBody.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .decoding import UndecodableBody

_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;,\s]+))', re.IGNORECASE)
_PLAIN_TRANSFER = frozenset({"", "7bit", "8bit", "binary"})


@dataclass(frozen=True, slots=True)
class Part:
    headers: dict[str, str]  # lower-case names
    start: int  # the content's span in the whole body
    end: int

    @property
    def name(self) -> str | None:
        m = re.search(r'\bname="([^"]*)"', self.headers.get("content-disposition", ""))
        return m.group(1) if m else None


def is_multipart(content_type: str) -> bool:
    return content_type.lower().lstrip().startswith("multipart/")


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """The parts of a multipart body, with the spans of their contents. Raises UndecodableBody."""
    m = _BOUNDARY.search(content_type)
    if m is None:
        raise UndecodableBody("a multipart body without a boundary")
    delimiter = b"--" + (m.group(1) or m.group(2)).encode("latin-1")
    pos = 0 if body.startswith(delimiter) else body.find(b"\r\n" + delimiter)
    if pos < 0:
        raise UndecodableBody("a multipart body without its boundary")
    pos += len(delimiter) if pos == 0 else len(delimiter) + 2
    parts: list[Part] = []
    while True:
        if body.startswith(b"--", pos):
            return parts  # the close delimiter; what follows is the epilogue
        line_end = body.find(b"\r\n", pos)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            raise UndecodableBody("a malformed multipart delimiter line")
        head_end = body.find(b"\r\n\r\n", line_end)  # line_end itself for a part without headers
        if head_end < 0:
            raise UndecodableBody("a multipart part without a header end")
        headers = _headers(body[line_end + 2 : head_end])
        start = head_end + 4
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise UndecodableBody("a multipart body without its close delimiter")
        if headers.get("content-transfer-encoding", "").lower() not in _PLAIN_TRANSFER or headers.get(
            "content-encoding", "identity"
        ).lower() not in ("", "identity"):
            raise UndecodableBody("a multipart part in a transfer or content coding")
        parts.append(Part(headers, start, end))
        pos = end + 2 + len(delimiter)


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.decode("latin-1").strip().lower()] = value.decode("utf-8", "replace").strip()
    return headers


def replace_parts(body: bytes, new: dict[int, bytes], parts: list[Part]) -> bytes:
    """body with the contents of the parts at these indexes replaced, every other byte kept."""
    out, pos = [], 0
    for i, part in enumerate(parts):
        if i in new:
            out += [body[pos : part.start], new[i]]
            pos = part.end
    out.append(body[pos:])
    return b"".join(out)
