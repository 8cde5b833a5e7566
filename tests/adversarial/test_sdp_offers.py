"""A WebRTC offer reaches OpenAI as the browser wrote it (round-6b G13).

`POST /v1/realtime/calls` carries the browser's SDP offer (application/sdp, or the `sdp` field of
a multipart form beside the session's JSON). Its ICE password was a PASSWORD and its candidates'
addresses IPV4: the default redact rewrote `a=ice-pwd:` (the call never connected) and block
refused every voice call. The signalling lines are now left out of the scan; the rest of the
offer (a session name, free text) is still scanned. Real mitmdump.
"""

from __future__ import annotations

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import marker

CALLS = "https://api.openai.com/v1/realtime/calls?model=gpt-realtime"
OFFER = (
    "v=0\r\no=- 6543210987654321 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=candidate:2999745851 1 udp 2122260223 10.20.30.40 54400 typ host generation 0\r\n"
    "a=candidate:842163049 1 udp 1686052607 81.2.69.160 54400 typ srflx raddr 10.20.30.40 rport 54400\r\n"
    "a=ice-ufrag:Qx7w\r\na=ice-pwd:k9ZtR3vPq1LmN8sXw2YcB4dH\r\n"
    "a=fingerprint:sha-256 4A:1F:9C:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F:11\r\n"
    "a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n"
)
POLICIES = ["dlp: {secrets: redact, pii: redact}\n", "dlp: {secrets: block, pii: block}\n"]


def _seen_body(upstream, mark: str) -> bytes:
    return next(s.body for s in upstream.seen if s.headers.get("x-attack") == mark)


@pytest.mark.parametrize("policy", POLICIES, ids=["redact", "block"])
def test_an_offer_reaches_openai_unchanged(proxy_with, upstream, policy):
    proxy = proxy_with(policy)
    user = "sdp-" + marker()[:6]
    answer, mark = post_marked(proxy, user, OFFER.encode(), CALLS, "application/sdp")
    assert reached(upstream, mark), answer.text[:300]
    assert _seen_body(upstream, mark) == OFFER.encode()
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["dlp_findings"] is None


def test_an_offer_in_a_multipart_form_reaches_openai_unchanged(proxy_with, upstream):
    proxy = proxy_with(POLICIES[0])
    body = (b'--BBB\r\nContent-Disposition: form-data; name="sdp"\r\n\r\n' + OFFER.encode()
            + b'\r\n--BBB\r\nContent-Disposition: form-data; name="session"\r\nContent-Type: application/json\r\n\r\n'
            b'{"type": "realtime", "model": "gpt-realtime"}\r\n--BBB--\r\n')  # fmt: skip
    answer, mark = post_marked(proxy, "sdp-mp-" + marker()[:6], body, CALLS, "multipart/form-data; boundary=BBB")
    assert reached(upstream, mark) and _seen_body(upstream, mark) == body, answer.text[:300]


def test_a_key_elsewhere_in_an_offer_is_refused(proxy_with, upstream):
    proxy = proxy_with(POLICIES[0])
    offer = OFFER.replace("s=-\r\n", "s=-\r\ni=aws AKIA2OGYBAH6STMMNXNN\r\n")
    answer, mark = post_marked(proxy, "sdp-key-" + marker()[:6], offer.encode(), CALLS, "application/sdp")
    assert answer.status_code == 403 and not reached(upstream, mark), answer.text[:300]
