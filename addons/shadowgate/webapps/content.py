"""What DLP reads of an uploaded file: text-like files as text, Office files' XML text, else nothing.

Plain text, CSV, JSON, Markdown and source code are read in whatever encoding they are in, as
the API path reads a text file (wireformats/decoding.read_text: UTF-16/32 with or without a BOM,
UTF-8 with stray bytes, Windows-1252; red-team F18); docx, xlsx and pptx are ZIP
archives of XML, read with the standard library up to a size limit (a ZIP bomb stops at the
limit). PDF, images and everything else are unscannable here: the policy decides by file type.
"""

from __future__ import annotations

import io
import re
import zipfile

from shadowgate.webapps.classify import FileFacts
from shadowgate.wireformats.decoding import read_text

TEXT_EXTENSIONS = frozenset(
    "txt csv tsv md markdown json jsonl ndjson xml yaml yml toml ini cfg conf env log sql html htm css js mjs ts tsx "
    "jsx py rb go rs java kt kts scala c h cc cpp hpp cs php pl sh bash zsh ps1 r swift m lua dart tf hcl pem key "
    "properties gradle vue svelte ipynb tex rst".split()
)
OFFICE_PARTS = {
    "docx": re.compile(r"word/(document|header\d*|footer\d*|footnotes|comments)\.xml"),
    "xlsx": re.compile(r"xl/(sharedStrings|worksheets/sheet\d+)\.xml"),
    "pptx": re.compile(r"ppt/(slides/slide\d+|notesSlides/notesSlide\d+)\.xml"),
}
_TAG = re.compile(r"<[^>]+>")


def file_text(file: FileFacts, limit: int) -> str | None:
    """The file's text for DLP, cut at `limit` characters; None when it has none we can read."""
    data = file.data
    if not data:
        return None
    ext = file.extension
    if ext in OFFICE_PARTS or data[:4] == b"PK\x03\x04" and ext not in TEXT_EXTENSIONS:
        return _office_text(data, OFFICE_PARTS.get(ext or ""), limit)
    ctype = (file.content_type or "").lower()
    named_text = ext in TEXT_EXTENSIONS or ctype.startswith("text/") or ctype.endswith(("json", "xml", "yaml"))
    # Sniffed, not trusted from the name: a text file renamed to .bin, in UTF-16 without a BOM
    # (NUL bytes) or in Windows-1252 (bytes that are not UTF-8), is still text; a known binary
    # format (a signature and binary bytes) is not, unless its name says text.
    head = data[: limit * 4]  # up to 4 bytes a character
    reading = read_text(head)
    if reading is None:
        return head.decode("utf-8", "replace")[:limit] if named_text else None
    if reading.errors != "surrogateescape":
        return "\n\n\n".join((reading.text[:limit], *(other[:limit] for other in reading.also)))
    # Not valid in its own encoding: one reading, so a value is counted once. UTF-8 with a stray
    # byte when real UTF-8 characters are in it (the stray bytes as U+FFFD), else the other
    # reading (Windows-1252, or UTF-16/32 with a cut character), which reads every byte.
    main = head.decode("utf-8", "replace")
    if not reading.also or any(c > "\x7f" and c != "\ufffd" for c in main):
        return main[:limit]
    return reading.also[0][:limit]


def _office_text(data: bytes, parts: re.Pattern[str] | None, limit: int) -> str | None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        return None
    out: list[str] = []
    budget = limit
    with archive:
        for info in archive.infolist():
            if budget <= 0:
                break
            if not (parts.fullmatch(info.filename) if parts else info.filename.endswith(".xml")):
                continue
            try:
                with archive.open(info) as member:
                    xml = member.read(budget * 4)  # XML markup is most of the bytes
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError):
                continue
            text = _TAG.sub(" ", xml.decode("utf-8", "replace"))
            out.append(text[:budget])
            budget -= len(out[-1])
    return "\n".join(out) if out else None
