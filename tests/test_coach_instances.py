"""Coach consent is carried by the browser and holds on every instance sharing the key (issue 18).

Two real mitmdump instances share one fingerprint key file, as instances behind a balancer share
a config directory; each has its own memory, so whatever passes on B after "continue" on A was
verified from the cookie alone. A is the session proxy with this policy and key, B one start for
the module; every test has users of its own, so no test meets another's consent in B's memory.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import pytest

from shadowgate.enforce.coach import CONSENT
from shadowgate.enforce.coach import COOKIE_PREFIX
from shadowgate.enforce.coach import ConsentTokens
from shadowgate.enforce.coach import cookie_name
from tests.conftest import start_proxy

POLICY = """\
rules:
  - id: coach-chatgpt
    match: {provider: chatgpt}
    action: coach
    message: ChatGPT is not approved for customer data.
    coach: {api: block, minutes: 30}
"""
NAV = {"sec-fetch-mode": "navigate", "accept": "text/html"}


@pytest.fixture(scope="module")
def shared_key(tmp_path_factory) -> Path:
    key = tmp_path_factory.mktemp("shared") / "shadowgate-fingerprint.key"
    key.write_text(secrets.token_hex(32) + "\n")  # as `shadowgate ca --confdir` prepares it
    return key


@pytest.fixture(scope="module")
def instance_b(tmp_path_factory, upstream, test_ca, shared_key):
    """A second instance of its own (a start), with its own memory; each test uses its own users."""
    folder = tmp_path_factory.mktemp("instance_b")
    (folder / "policy.yaml").write_text(POLICY)
    b = start_proxy(
        folder / "p", upstream, test_ca,
        "--set", f"shadowgate_policy={folder / 'policy.yaml'}", "--set", f"shadowgate_fingerprint_key={shared_key}",
    )  # fmt: skip
    yield b
    b.stop()


@pytest.fixture
def pair(proxy_with, instance_b, shared_key):
    """Instance A is the session proxy with the policy and the shared key, B a start of its own."""
    a = proxy_with(POLICY, shadowgate_fingerprint_key=str(shared_key))
    return a, instance_b, shared_key


def continue_on(proxy, user: str) -> httpx.Cookies:
    """Open the coach page through `proxy` and click continue: the cookies the browser keeps."""
    with proxy.client(user) as client:
        page = client.get("https://chatgpt.com/c/42", headers=NAV)
        assert page.status_code == 200 and "Before you continue" in page.text
        action = page.text.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        done = client.post(f"https://chatgpt.com{action}")
        assert done.status_code == 302 and done.headers["location"] == "/c/42"
        cookie = done.headers["set-cookie"]
        assert (
            "HttpOnly" in cookie and "Secure" in cookie and "Domain=chatgpt.com" in cookie and "Max-Age=1800" in cookie
        )
        return httpx.Cookies(client.cookies)


def coached(proxy, user: str, cookies: httpx.Cookies) -> tuple[bool, bool]:
    """(the page came back as the coach page, an API call was refused) with these cookies."""
    with proxy.client(user, cookies=cookies) as client:
        page = client.get("https://chatgpt.com/c/42", headers=NAV)
        api = client.post("https://chatgpt.com/backend-api/conversation", json={"x": 1})
    return "Before you continue" in page.text, api.status_code == 403 and "coach-chatgpt" in api.text


def test_continue_on_one_instance_holds_on_the_other(pair, upstream):
    a, b, _ = pair
    assert coached(b, "carol", httpx.Cookies()) == (True, True)  # before: page, and the API is blocked
    cookies = continue_on(a, "carol")
    before = len(upstream.seen)
    assert coached(b, "carol", cookies) == (False, False)
    passed = upstream.seen[before:]
    assert [s.path for s in passed] == ["/c/42", "/backend-api/conversation"]
    # The consent cookie is the proxy's: the provider never sees it.
    assert not any(COOKIE_PREFIX in s.headers.get("cookie", "") for s in passed)


def test_a_continue_link_from_one_instance_is_accepted_by_the_other(pair):
    a, b, _ = pair
    with a.client("dave") as client:
        page = client.get("https://chatgpt.com/", headers=NAV)
    action = page.text.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    with b.client("dave") as client:
        assert client.post(f"https://chatgpt.com{action}").status_code == 302
        # Another user cannot use dave's link to give consent.
    with b.client("erin") as client:
        assert client.post(f"https://chatgpt.com{action}").status_code == 400


def test_forged_expired_and_other_users_consent_are_refused(pair):
    a, b, key = pair
    cookies = continue_on(a, "frank")
    name = cookie_name("chatgpt")
    token = cookies[name]
    assert coached(b, "grace", cookies) == (True, True)  # frank's cookie does not coach grace through

    encoded, _, mac = token.partition(".")
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    assert coached(b, "frank", httpx.Cookies({name: f"{encoded}.{flipped}"})) == (True, True)

    tokens = ConsentTokens(key.read_bytes().strip())
    expired = tokens.sign(CONSENT, ["frank", "chatgpt", "coach-chatgpt"], int(time.time()) - 1)
    assert coached(b, "frank", httpx.Cookies({name: expired})) == (True, True)
    other_rule = tokens.sign(CONSENT, ["frank", "chatgpt", "some-other-rule"], int(time.time()) + 600)
    assert coached(b, "frank", httpx.Cookies({name: other_rule})) == (True, True)
    valid = tokens.sign(CONSENT, ["frank", "chatgpt", "coach-chatgpt"], int(time.time()) + 600)
    assert coached(b, "frank", httpx.Cookies({name: valid})) == (False, False)  # the same signer, in date
    # A token signed with another key (an instance not sharing it) is refused.
    stranger = ConsentTokens(b"another key").sign(
        CONSENT, ["frank", "chatgpt", "coach-chatgpt"], int(time.time()) + 600
    )
    assert coached(b, "frank", httpx.Cookies({name: stranger})) == (True, True)
