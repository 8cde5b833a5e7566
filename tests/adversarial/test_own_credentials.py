"""The caller's own API key, where the provider documents it, is not a leak (round-6b G5).

Google documents `?key=API_KEY` for the Gemini REST and Live APIs and Vertex express mode: the key
authenticates the caller, as the x-goog-api-key header does, and headers are not content. The URL
scan used to find it in every such call: refused under the default `redact` (a URL is never
rewritten), an alert per call under `log`. Real mitmdump.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import marker

GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
GOOGLE_KEY = "AIzaSyD3x4mPl3-K3yF0rT3st1ngOnLy0123456"  # the shape of a Google API key (39 characters)
BODY = json.dumps({"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]}).encode()


@pytest.mark.parametrize("dlp", ["dlp: {secrets: redact}\n", "dlp: {secrets: block}\n", "dlp: {secrets: log}\n"])
@pytest.mark.parametrize("param", ["key", "$key"])
def test_the_key_google_authenticates_with_passes_unrecorded(proxy_with, upstream, dlp, param):
    proxy = proxy_with(dlp)
    user = "own-key-" + marker()[:6]
    answer, mark = post_marked(proxy, user, BODY, f"{GEMINI}?{param}={GOOGLE_KEY}")
    assert answer.status_code == 200 and reached(upstream, mark), answer.text[:300]
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["dlp_findings"] is None


@pytest.mark.parametrize(
    "query",
    [
        "key=AKIA2OGYBAH6STMMNXNN",  # another secret under the same name
        f"q={GOOGLE_KEY}",  # a Google key where no credential goes
        f"key={GOOGLE_KEY}&key2={GOOGLE_KEY[:-1]}X",  # a second key beside it
    ],
    ids=["aws-under-key", "google-key-elsewhere", "second-key"],
)
def test_other_secrets_in_the_query_are_still_refused(proxy_with, upstream, query):
    proxy = proxy_with("dlp: {secrets: block}\n")
    answer, mark = post_marked(proxy, "own-key-x-" + marker()[:6], BODY, f"{GEMINI}?{query}")
    assert answer.status_code == 403 and not reached(upstream, mark), answer.text[:300]


@pytest.mark.parametrize(
    "url",
    ["https://api.openai.com/v1/chat/completions", "https://api.anthropic.com/v1/messages"],
    ids=["openai", "anthropic"],
)
def test_a_google_key_in_another_providers_query_is_found(proxy_with, upstream, url):
    # Red-team F118: the exclusion held on every AI host; a Google key is only Google's credential.
    proxy = proxy_with("dlp: {secrets: block}\n")
    body = json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}).encode()
    answer, mark = post_marked(proxy, "own-key-elsewhere-" + marker()[:6], body, f"{url}?key={GOOGLE_KEY}")
    assert answer.status_code == 403 and not reached(upstream, mark), answer.text[:300]
