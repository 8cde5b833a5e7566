"""What DLP reads of an uploaded file: text-like files as text, Office files' XML text, else nothing.

Plain text, CSV, JSON, Markdown and source code are read in whatever encoding they are in, as
the API path reads a text file (wireformats/decoding.read_text: UTF-16/32 with or without a BOM,
UTF-8 with stray bytes, Windows-1252; red-team F18); docx, xlsx and pptx are ZIP
archives of XML, read with the standard library up to a size limit (a ZIP bomb stops at the
limit). PDF, images and everything else are unscannable here: the policy decides by file type.
"""

from __future__ import annotations

import html
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
# Tags that end a paragraph, a cell or a line (Word, Excel, PowerPoint): a line break in the text.
# Every other tag (a run, its properties) is nothing, so the runs of a paragraph join.
_BREAK_TAG = re.compile(r"</(?:\w+:)?(?:p|tc|tr|c|si|row|txBody)>|<(?:\w+:)?(?:br|tab|cr)\b[^>]*/?>")
# Package bookkeeping and formatting parts: no text a person wrote.
_SKIP_PART = re.compile(
    r"(?:^|/)(?:\[Content_Types\]|styles|theme\d*|fontTable|settings|webSettings|numbering)\.xml$|_rels/"
)


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
        # The parts that hold a document's text first, then every other XML part but the
        # package's bookkeeping: a main part renamed in _rels/.rels is still read (red-team F37).
        members = [i for i in archive.infolist() if i.filename.endswith(".xml") and not _SKIP_PART.search(i.filename)]
        members.sort(key=lambda i: not (parts.fullmatch(i.filename) if parts else True))
        for info in members:
            if budget <= 0:
                break
            try:
                with archive.open(info) as member:
                    xml = member.read(budget * 4)  # XML markup is most of the bytes
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError):
                continue
            out.append(xml_text(xml.decode("utf-8", "replace"))[:budget])
            budget -= len(out[-1])
    return "\n".join(out) if out else None


def xml_text(xml: str) -> str:
    """The text of an Office XML part as a reader sees it: the runs of a paragraph joined (Word
    splits a word into runs on every edit, so `AKIA` and the rest of a key may sit in two), a
    paragraph, cell or line break a line of its own, character references undone."""
    text = _BREAK_TAG.sub("\n", xml)
    return html.unescape(_TAG.sub("", text))
