"""The normalised view of a text that the detectors also read, with a map back to its offsets.

A prompt can carry a secret the model reads perfectly well but a pattern does not match: a
zero-width space or soft hyphen inside the key, fullwidth letters (`ｓｋ－ａｎｔ`), a Cyrillic `ѕ` in
`ѕk-`, mathematical bold letters, combining strike-through marks. normalize() rewrites a copy:

* every format character (Unicode category Cf: ZWSP, ZWJ, ZWNJ, word joiner, soft hyphen,
  bidi controls, tag characters, BOM), the other default-ignorable characters that render as nothing
  (Hangul fillers, Khmer inherent vowels, the unassigned ignorable ranges), U+2800 BRAILLE
  PATTERN BLANK, control characters other than tab and line breaks, the script-independent
  combining marks (diacritics, strike-throughs, variation selectors) and the enclosing marks
  (a circle or keycap around a letter) are removed;
* decimal digits of other scripts (Arabic-Indic, Devanagari, ...) become ASCII digits;
* every other character becomes its NFKC form (`ﬁ` -> `fi`, `ｓ` -> `s`, `𝐬` -> `s`, `…` -> `...`,
  no-break and other spaces -> space). The form is taken character by character: composing a
  base letter with a following mark is not needed, since those marks are removed and the
  detectors look for ASCII;
* in a token (a run without white space) that mixes ASCII letters or digits with Cyrillic,
  Greek or Armenian look-alikes, each look-alike becomes the ASCII letter it imitates (the
  prototypes of Unicode's confusables.txt, UTS #39), and dash look-alikes become `-`. Tokens of
  one script only stay as they are: Russian prose is not rewritten.

View.span() maps a span of the view back to the original text, so a finding redacts the
original characters, including any removed ones inside it and the whole of an expanded one.
Plain ASCII text without control characters needs no view (normalize returns None at C speed).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass

# Renders as nothing, though not in category Cf: the Hangul fillers, the Khmer inherent vowels
# (Default_Ignorable_Code_Point, category Mn), and U+2800 BRAILLE PATTERN BLANK, the "invisible
# character" of chat names, which no text puts between two letters of a word (red-team F17).
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u17b4\u17b5\u2800")
# The Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt) outside category Cf that are
# unassigned (Cn) today: a renderer draws nothing for them, so they hide a key as a ZWSP does.
_UNASSIGNED_IGNORABLE = ((0x2065, 0x2065), (0xFFF0, 0xFFF8), (0xE0000, 0xE0FFF))
# Combining marks that belong to no script (diacritics, overlays, variation selectors); the
# vowel signs of Indic and other scripts are part of their words and stay.
_GENERIC_MARKS = (
    (0x0300, 0x036F),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0xFE00, 0xFE0F),
    (0xFE20, 0xFE2F),
    (0x180B, 0x180F),
    (0xE0100, 0xE01EF),
)

# Look-alike -> the ASCII character it imitates (one character each way, so folding them keeps
# every offset). Source: the prototypes in Unicode's confusables.txt (UTS #39) for the letters
# and digits of keys.
_HOMOGLYPH_PAIRS = (
    # Cyrillic
    "аa бb вB гr еe ѐe ёe һh іi їi јj кk лn мM нH оo пn рp сc тT уy хx ѕs ԁd ԛq ԝw ӏl"
    " АA ВB ЕE ЅS ІI ЈJ КK МM НH ОO РP СC ТT УY ХX ԌG ԚQ ԜW ӀI ҮY"
    # Greek
    " αa βB γy εe ηn ιi κk νv οo ρp σo τt υu χx ωw ϲc ϳj"
    " ΑA ΒB ΕE ΖZ ΗH ΙI ΚK ΜM ΝN ΟO ΡP ΤT ΥY ΧX Ϲc"
    # Armenian, Latin extensions
    " օo սu ցg հh ոn ıi ȷj ɡg ɑa ʏy"
    # hyphen and minus look-alikes (not the em dash: it looks like no hyphen)
    " ‐- ‑- ‒- –- −- ⁃-"
)
_HOMOGLYPHS: dict[int, int] = {}
for _pair in _HOMOGLYPH_PAIRS.split():
    _HOMOGLYPHS[ord(_pair[0])] = ord(_pair[-1])
_HOMOGLYPH_CLASS = "".join(chr(c) for c in _HOMOGLYPHS)
_ANY_HOMOGLYPH = re.compile(f"[{re.escape(_HOMOGLYPH_CLASS)}]")
# A look-alike next to an ASCII letter or digit (or one joining character between). Every
# look-alike is outside Latin-1, so in the text encoded to Latin-1 it is a "?": a pattern that
# starts with that literal is a memory search, searched forwards and in the reversed bytes for a
# look-alike after the ASCII character. Each "?" found is then checked in the text itself.
_JUNCTION = re.compile(rb"\?[-_.]?[A-Za-z0-9]")
_TOKEN_REACH = 512  # a key is far shorter; a token without white space is folded this far each way
_SPACE = re.compile(r"\s")

_ASCII_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ASCII_DIGITS = frozenset("0123456789")
_NOT_CONTROL = bytes(range(0x20, 0x7F)) + b"\t\n\r"
# ASCII characters the view removes.
_ASCII_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _generic_mark(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _GENERIC_MARKS)


def _fold_char(ch: str) -> str | None:
    """What one character becomes in the view; None when it stays."""
    category = unicodedata.category(ch)
    if category == "Cf" or ch in _INVISIBLE or (category == "Cc" and ch not in "\t\n\r"):
        return ""
    # Enclosing marks (a circle, a keycap, the Cyrillic number signs) draw around the letter
    # before them, which a reader still reads: script-independent, like the overlays.
    if (category == "Mn" and _generic_mark(ord(ch))) or category == "Me":
        return ""
    if category == "Cn" and any(lo <= ord(ch) <= hi for lo, hi in _UNASSIGNED_IGNORABLE):
        return ""
    if category == "Nd" and not ch.isascii():
        # Decimal digits of other scripts (Arabic-Indic, Devanagari, ...) are the digits to every
        # reader of a number; NFKC folds only the fullwidth and mathematical ones (red-team F34).
        return str(unicodedata.digit(ch))
    folded = unicodedata.normalize("NFKC", ch)
    if folded == ch:
        return None
    # Some compatibility forms carry a mark (U+00A8 DIAERESIS -> " \u0308"): drop it as above.
    return "".join(c for c in folded if not (unicodedata.category(c) == "Mn" and _generic_mark(ord(c))))


class _Tables:
    """What _fold_char gave for each character seen so far."""

    folds: dict[str, str | None] = {}


def _fold_cached(ch: str) -> str | None:
    folds = _Tables.folds
    if ch in folds:
        return folds[ch]
    if len(folds) > 8192:
        folds.clear()  # bounded: a text of many distinct rare characters must not grow it forever
    folded = folds[ch] = _fold_char(ch)
    return folded


@dataclass(frozen=True, slots=True)
class View:
    """A normalised copy of a text. Between breakpoints the copy is character for character
    (a run of unchanged or one-for-one replaced characters); a breakpoint that is not linear
    is one original character expanded to several (`ﬁ` -> `fi`)."""

    text: str
    _out: list[int]  # where each stretch starts in the view
    _src: list[int]  # where it starts in the original
    _linear: list[bool]
    changed: list[int]  # sorted view offsets of the changes that may show a value (see _may_matter)
    _tail: int  # the original's length: removed characters at its end follow the view's last one

    def start(self, pos: int) -> int:
        k = bisect.bisect_right(self._out, pos) - 1
        return self._src[k] + (pos - self._out[k] if self._linear[k] else 0)

    def end(self, pos: int) -> int:
        """The original offset just after the character before view offset pos (pos > 0), and
        after the removed characters that follow it: a strike-through mark on a value's last
        letter goes with the value."""
        last = pos - 1
        k = bisect.bisect_right(self._out, last) - 1
        end = self._src[k] + (last - self._out[k] if self._linear[k] else 0) + 1
        return max(end, self.start(pos)) if pos < len(self.text) else max(end, self._tail)

    def windows(self, reach: int) -> list[tuple[int, int]]:
        """Stretches of the view around its changes: the only places where the detectors can find
        in the view what they did not find in the text. Each reaches `reach` characters past its
        changes, then on to white space (at most `reach` further), so a window does not cut a
        token; stretches that meet are merged."""
        text = self.text
        size = len(text)
        out: list[tuple[int, int]] = []
        changed = self.changed
        n = len(changed)
        k = 0
        while k < n:
            # A run of changes, each within reach + 1 of the one before, lies in one window (a
            # window ends at least reach + 1 past each change in it), and a window's end only
            # grows with the change it is measured from: only the run's first change (merge or
            # new window) and its last (the end) are computed. A text of fullwidth letters has a
            # change per character.
            first = changed[k]
            while k + 1 < n and changed[k + 1] <= changed[k] + 1 + reach:
                k += 1
            pos = changed[k]
            k += 1
            if out and first <= out[-1][1]:
                lo, previous_hi = out.pop()
            else:
                previous_hi = 0
                lo = max(0, first - reach)
                if lo:
                    cut = max(text.rfind(c, max(0, lo - reach), lo + 1) for c in " \n\t")
                    lo = cut + 1 if cut >= 0 else max(0, lo - reach)
            hi = min(size, pos + 1 + reach)
            after = _SPACE.search(text, hi, hi + reach) if hi < size else None
            hi = after.start() if after else min(size, hi + reach)
            out.append((lo, max(hi, previous_hi)))
        return out

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of view[start:end]: every original character it was made from."""
        if end <= start:
            at = self.start(start) if start < len(self.text) else self.end(start) if start else 0
            return at, at
        return self.start(start), self.end(end)


def normalize(text: str) -> View | None:
    """The view of text, or None when it would equal text."""
    if text.isascii():
        if not text.encode("ascii").translate(None, _NOT_CONTROL):  # ~10x faster than a search
            return None
        at: Iterable[int] = (m.start() for m in _ASCII_CONTROLS.finditer(text))
        homoglyphs = False
    else:
        # The distinct characters other than printable ASCII, at C speed (a UTF-8 sequence of a
        # character above U+007F is all high bytes): most prose has a few dozen, none of which
        # changes (accents, CJK, curly quotes), and then the view is not built at all. A class
        # search for every changing character over the whole text cost 7 % of a clean scan.
        rare = set(text.encode("utf-8", "surrogatepass").translate(None, _NOT_CONTROL).decode("utf-8", "surrogatepass"))
        changing = [c for c in rare if _fold_cached(c) is not None]
        # a look-alike in the text, or one that NFKC makes (mathematical alpha -> Greek alpha)
        homoglyphs = any(ord(c) in _HOMOGLYPHS for c in rare) or any(
            ord(f) in _HOMOGLYPHS for c in changing for f in _fold_cached(c) or ""
        )
        if not changing and not homoglyphs:
            return None
        if all(len(_fold_cached(c) or "") <= 1 for c in changing) and 32 * sum(map(text.count, changing)) > len(text):
            return _one_for_one(text, changing, homoglyphs)
        at = sorted(i for c in changing for i in _find_all(text, c))
    return _by_character(text, at, homoglyphs)


def _by_character(text: str, at: Iterable[int], homoglyphs: bool) -> View | None:
    """The view, built change by change (at: the offsets of the characters that may change)."""
    pieces: list[str] = []
    changed: list[int] = []  # view offsets where the view differs from text
    out_starts = [0]
    src_starts = [0]
    linear = [True]
    done = 0  # original offset copied up to
    out_len = 0
    differs = False
    for i in at:
        folded = _fold_cached(text[i])
        if folded is None:
            continue
        pieces.append(text[done:i])
        out_len += i - done
        differs = True
        if _may_matter(text, i, folded):
            changed.append(out_len)
        pieces.append(folded)
        done = i + 1
        if len(folded) == 1:
            out_len += 1
            continue  # one for one: the stretch stays linear
        if folded:
            _breakpoint(out_starts, src_starts, linear, out_len, i, False)
            out_len += len(folded)
        _breakpoint(out_starts, src_starts, linear, out_len, i + 1, True)
    pieces.append(text[done:])
    folded_text = _fold_homoglyphs("".join(pieces), changed) if homoglyphs else "".join(pieces)
    if not differs and not changed:
        return None
    return View(folded_text, out_starts, src_starts, linear, sorted(changed), len(text))


def _one_for_one(text: str, changing: list[str], homoglyphs: bool) -> View | None:
    """The view when every character that changes becomes one character or none (fullwidth
    letters, no-break spaces, zero-width characters): the copy is one str.translate, the changes
    that may show a value one regex pass, and each run of removed characters one breakpoint. The
    character-by-character loop costs ~5 us per change (a text of fullwidth letters took 30x a
    clean one, of zero-width spaces 18x), these ~0.2 us per character of the text: taken when
    more than one character in 32 changes."""
    folds = {c: _fold_cached(c) or "" for c in changing}
    always = "".join(c for c, f in folds.items() if f in _ASCII_ALNUM)
    beside = "".join(c for c, f in folds.items() if f not in _ASCII_ALNUM and not f.isspace())
    spaces = "".join(c for c, f in folds.items() if f.isspace())
    parts = []
    if always:
        parts.append(f"[{re.escape(always)}]")
    if beside:  # a change that gives no letter or digit matters next to one (see _may_matter)
        parts.append(f"[{re.escape(beside)}](?:(?<=[A-Za-z0-9].)|(?=[A-Za-z0-9]))")
    if spaces:  # a space matters between two digits (see _may_matter)
        parts.append(f"[{re.escape(spaces)}](?<=[0-9].)(?=[0-9])")
    changed = [m.start() for m in re.finditer("|".join(parts), text)] if parts else []
    outs, srcs, linear = [0], [0], [True]
    removed = "".join(c for c, f in folds.items() if not f)
    if removed:
        # offsets in the view: each run of removed characters shifts what follows it
        starts: list[int] = []
        ends: list[int] = []
        before: list[int] = []  # characters removed before each run
        count = 0
        for m in re.finditer(f"[{re.escape(removed)}]+", text):
            start, end = m.span()
            _breakpoint(outs, srcs, linear, start - count, end, True)
            starts.append(start)
            ends.append(end)
            before.append(count)
            count += end - start
        for n, i in enumerate(changed):
            k = bisect.bisect_right(starts, i) - 1
            if k >= 0:
                changed[n] = i - before[k] - (min(i, ends[k]) - starts[k])
    folded = text.translate({ord(c): f for c, f in folds.items()})
    if homoglyphs:
        folded = _fold_homoglyphs(folded, changed)
    if folded == text and not changed:
        return None
    return View(folded, outs, srcs, linear, sorted(changed), len(text))


def _find_all(text: str, ch: str) -> Iterator[int]:
    at = text.find(ch)
    while at >= 0:
        yield at
        at = text.find(ch, at + 1)


def _may_matter(text: str, i: int, folded: str) -> bool:
    """Whether the change of text[i] to folded can make a value the text does not show: it gives
    an ASCII letter or digit, or touches one. A space for a no-break space, or a fullwidth comma
    between Chinese words, cannot; reading the view around every such change would read most
    Chinese or French text twice. A space between two digits can: a card number or an SSN grouped
    by U+202F or U+00A0, as French and other locales format numbers (red-team F34)."""
    if folded.isspace():
        return 0 < i < len(text) - 1 and text[i - 1] in _ASCII_DIGITS and text[i + 1] in _ASCII_DIGITS
    if any(c in _ASCII_ALNUM for c in folded):
        return True
    return (i > 0 and text[i - 1] in _ASCII_ALNUM) or (i + 1 < len(text) and text[i + 1] in _ASCII_ALNUM)


def _breakpoint(outs: list[int], srcs: list[int], linear: list[bool], out: int, src: int, is_linear: bool) -> None:
    if outs[-1] == out:  # an empty stretch (removed characters): the later breakpoint replaces it
        srcs[-1], linear[-1] = src, is_linear
    else:
        outs.append(out)
        srcs.append(src)
        linear.append(is_linear)


def _fold_homoglyphs(text: str, changed: list[int]) -> str:
    """text with the look-alikes in mixed tokens folded; appends the folded tokens' bounds to changed."""
    if text.isascii() or not _ANY_HOMOGLYPH.search(text):
        return text
    size = len(text)
    latin1 = text.encode("latin-1", "replace")
    candidates = [m.start() for m in _JUNCTION.finditer(latin1)]
    candidates += [size - 1 - m.start() for m in _JUNCTION.finditer(latin1[::-1])]
    junctions = sorted(at for at in candidates if ord(text[at]) in _HOMOGLYPHS)
    pieces: list[str] = []
    done = 0
    for at in junctions:
        if at < done:
            continue
        start = at
        floor = max(done, start - _TOKEN_REACH)
        while start > floor and not text[start - 1].isspace():
            start -= 1
        space = _SPACE.search(text, at, at + _TOKEN_REACH)
        end = space.start() if space else min(size, at + _TOKEN_REACH)
        token = text[start:end]
        folded = token.translate(_HOMOGLYPHS)
        if folded != token:
            changed.extend((start, end - 1))
        pieces.append(text[done:start])
        pieces.append(folded)
        done = end
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)
