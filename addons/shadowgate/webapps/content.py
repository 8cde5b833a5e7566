"""What DLP reads of an uploaded file: text-like files as text, Office files' XML text, else nothing.

Plain text, CSV, JSON, Markdown and source code are read as UTF-8; docx, xlsx and pptx are ZIP
archives of XML, read with the standard library up to a size limit (a ZIP bomb stops at the
limit). PDF, images and everything else are unscannable here: the policy decides by file type.
"""

from __future__ import annotations

import io
import re
import zipfile

from shadowgate.webapps.classify import FileFacts

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
    if (
        ext in TEXT_EXTENSIONS
        or ctype.startswith("text/")
        or ctype.endswith(("json", "xml", "yaml"))
        or _looks_text(data)
    ):
        return data[:limit].decode("utf-8", "replace")
    return None


def _looks_text(data: bytes) -> bool:
    """Sniffed, not trusted from the name: a text file renamed to .bin is still text."""
    head = data[:4096]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start > len(head) - 4  # a character cut by the 4 KiB window
    return True


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
