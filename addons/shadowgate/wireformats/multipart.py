"""multipart/form-data request bodies (RFC 7578): file uploads, audio, batch JSONL.

DLP reads each part's text: form fields, and files whose bytes are text (a JSONL batch file, a
.txt or .csv upload), whatever Content-Type the part claims, and each part's headers (a field
name or file name is text the server stores). Binary files (images, audio, PDFs) carry no text
to match and pass as they are. A body that does not parse as multipart, or a part in a transfer
or content coding, cannot be read as the upstream will read it: UndecodableBody.

The proxy and the server must split the body the same way, or the proxy scans one set of parts
and the server stores another. So the boundary is the parameter named exactly `boundary`, parsed
by the header grammar (quoted values, `xboundary=` is another parameter); a header that names it
twice or in an RFC 2231 form (`boundary*=`) is refused, since servers differ on which one wins.
The body must open with the delimiter, the delimiter may appear nowhere but at the part
boundaries (a server that also splits on a bare LF would see parts inside a part), and the
epilogue may hold no line that starts like a delimiter (another boundary's parts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from .decoding import UndecodableBody

_PLAIN_TRANSFER = frozenset({"", "7bit", "8bit", "binary"})
# RFC 9110 token, and an unquoted parameter value as lenient servers take it (up to ; , or space).
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"\s*({_TOKEN}/{_TOKEN})\s*")
_PARAM = re.compile(rf';\s*(?:({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;,"]+))\s*)?', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def header_params(value: str) -> tuple[str, list[tuple[str, str]]] | None:
    """(lower-case media type or disposition, [(lower-case name, value)]) of a header value such as
    Content-Type or Content-Disposition, quoted values unquoted; None when it does not parse."""
    m = _MEDIA_TYPE.match(value) or re.match(rf"\s*({_TOKEN})\s*", value)
    if m is None:
        return None
    params: list[tuple[str, str]] = []
    pos = m.end()
    while pos < len(value):
        p = _PARAM.match(value, pos)
        if p is None or p.end() == pos:
            return None
        if p.group(1) is not None:
            quoted = p.group(2)
            text = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else p.group(3)
            params.append((p.group(1).lower(), text))
        pos = p.end()
    return m.group(1).lower(), params


def declared_charset(content_type: str) -> str | None:
    """The `charset` parameter of a Content-Type, lower-case; None when it names none (or the
    header does not parse, or names it twice: then no one charset is the one a reader takes)."""
    parsed = header_params(content_type or "")
    named = [value for name, value in parsed[1] if name == "charset"] if parsed is not None else []
    return named[0].strip().lower() or None if len(named) == 1 else None


def boundary_of(content_type: str) -> bytes:
    """The multipart boundary as a server reads it. Raises UndecodableBody for a header that
    does not parse, names no boundary, or names it in more than one way."""
    parsed = header_params(content_type)
    if parsed is None:
        raise UndecodableBody("a multipart Content-Type that does not parse")
    named = [(name, v) for name, v in parsed[1] if name == "boundary" or name.startswith("boundary*")]
    if not named:
        raise UndecodableBody("a multipart body without a boundary")
    if len(named) > 1:
        raise UndecodableBody("a multipart Content-Type that names its boundary more than once")
    name, value = named[0]
    if name != "boundary" or not value:
        raise UndecodableBody("a multipart boundary in a form servers read differently")
    return value.encode("latin-1", "replace")


@dataclass(frozen=True, slots=True)
class Part:
    headers: dict[str, str]  # lower-case names
    start: int  # the content's span in the whole body
    end: int
    head: int = 0  # where the header block starts (it ends 4 bytes before start)

    @property
    def name(self) -> str | None:
        return self.disposition_params().get("name")

    def disposition_params(self) -> dict[str, str]:
        parsed = header_params(self.headers.get("content-disposition", ""))
        return dict(parsed[1]) if parsed is not None else {}

    def header_text(self) -> str:
        """Every header value as sent, and each Content-Disposition parameter as a server decodes
        it (quotes and escapes undone, `filename*=UTF-8''...` and %XX decoded), one a line: the
        field and file names a server stores, for DLP."""
        raw = "\n".join(self.headers.values())
        decoded: list[str] = []
        parsed = header_params(self.headers.get("content-disposition", ""))
        for name, value in parsed[1] if parsed is not None else ():
            if name.endswith("*"):  # RFC 5987 ext-value: charset'language'percent-encoded
                charset, _, rest = value.partition("'")
                value = unquote(rest.partition("'")[2], encoding=charset or "utf-8", errors="replace")
            decoded += [value, unquote(value, errors="replace")]
        # A value that reads as sent, or as its %XX decode (the scanner decodes those runs), is
        # there already: scanned once, counted once. Quoted-pair escapes (`"AK\\IA..."`) are not.
        plain = unquote(raw, errors="replace")
        return "\n".join([raw, *(v for v in dict.fromkeys(decoded) if v not in raw and v not in plain)])


def is_multipart(content_type: str) -> bool:
    return content_type.lower().lstrip().startswith("multipart/")


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """The parts of a multipart body, with the spans of their contents. Raises UndecodableBody."""
    delimiter = b"--" + boundary_of(content_type)
    if not body.startswith(delimiter):
        raise UndecodableBody("a multipart body that does not open with its boundary")
    pos = len(delimiter)
    parts: list[Part] = []
    while True:
        if body.startswith(b"--", pos):  # the close delimiter; what follows is the epilogue
            _check_epilogue(body[pos + 2 :])
            # Every delimiter at a line start is where we split: one anywhere else (after a bare
            # LF or CR, which lenient servers such as Werkzeug also take for a line break) would
            # start parts we never read.
            starts = re.findall(rb"(?:\A|[\r\n])" + re.escape(delimiter), body)
            if len(starts) != len(parts) + 1:
                raise UndecodableBody("a multipart body with its boundary inside a part")
            return parts
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
        parts.append(Part(headers, start, end, min(line_end + 2, head_end)))
        pos = end + 2 + len(delimiter)


def _check_epilogue(epilogue: bytes) -> None:
    """Only blank lines or plain text may follow the close delimiter: a line that starts like a
    delimiter is another boundary's parts, which a server reading that boundary stores."""
    if any(line.lstrip(b" \t").startswith(b"--") for line in re.split(rb"\r\n|\r|\n", epilogue)):
        raise UndecodableBody("a multipart epilogue that holds other parts")


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep:
            key = name.decode("latin-1").strip().lower()
            if key in headers:  # two Content-Disposition lines: servers differ on which one counts
                raise UndecodableBody("a multipart part that repeats a header")
            headers[key] = value.decode("utf-8", "replace").strip()
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
