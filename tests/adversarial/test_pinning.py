"""Class 1a: a failed client handshake must not turn inspection off.

Only a real certificate-rejection alert counts as pinning, only for that client, user and host,
only for hosts the policy allows with DLP off, and every rejection and pass-through is a row.
"""

from __future__ import annotations

import httpx
import pytest

from tests.adversarial.wire import TlsClient
from tests.adversarial.wire import open_tunnel

URL = "https://api.openai.com/_fake/bytes?size=3"


def _pinned_app(proxy, user: str) -> httpx.Client:
    """Trusts only the upstream's CA, as an app with a pinned certificate does."""
    return httpx.Client(proxy=proxy.url(user), verify=proxy.test_ssl_context(), timeout=10)


def _passes_through(proxy, user: str) -> bool:
    with _pinned_app(proxy, user) as client:
        try:
            return client.get(URL).status_code == 200
        except httpx.ConnectError:
            return False


@pytest.mark.parametrize("abuse", ["empty-record", "hang-up"])
def test_a_failed_handshake_without_a_certificate_alert_changes_nothing(proxy_with, abuse):
    proxy = proxy_with()
    user = f"eve-{abuse}"  # the proxy's memory of pinned clients is the session's: a user per case
    sock, status = open_tunnel(proxy.port, "api.openai.com:443", user=user)
    assert status == 200
    if abuse == "empty-record":
        sock.sendall(b"\x16\x03\x01\x00\x00")
    else:
        sock.sendall(TlsClient(sock, proxy.ssl_context(), "api.openai.com").client_hello())
    sock.close()
    # Still decrypted: a client that trusts only the proxy's CA gets its answer.
    with httpx.Client(proxy=proxy.url(user), verify=proxy.proxy_only_ssl_context(), timeout=10) as client:
        assert client.get(URL).status_code == 200
    assert "rejected the proxy certificate" not in proxy.log()


def test_pinning_is_per_user_not_per_address(proxy_with):
    proxy = proxy_with()
    with _pinned_app(proxy, "pinner") as client:
        with pytest.raises(httpx.ConnectError):
            client.get(URL)
    assert _passes_through(proxy, "pinner")
    # Another person behind the same address (one NAT, one terminal server) is still inspected.
    assert not _passes_through(proxy, "bystander")
    rows = proxy.rows("user_name IN ('pinner', 'bystander')", expect=3)
    notes = sorted((r["user_name"], r["inspect_note"]) for r in rows)
    assert ("pinner", "client pins certificates: passed through") in notes
    assert ("pinner", "client rejected the proxy certificate") in notes
    assert ("bystander", "client rejected the proxy certificate") in notes


def test_pinning_never_opens_a_blocked_host(proxy_with, upstream):
    proxy = proxy_with("rules:\n  - id: no-openai\n    match: {provider: openai}\n    action: block\n")
    seen = len(upstream.seen)
    for _ in range(3):
        assert not _passes_through(proxy, "blocked-pinner")
    assert len([s for s in upstream.seen[seen:] if s.path.startswith("/_fake/bytes")]) == 0
    # Decrypted, the call is refused by the rule, as for everyone else.
    with proxy.client("blocked-pinner") as client:
        assert client.get(URL).status_code == 403
    notes = [r["inspect_note"] for r in proxy.rows("user_name = 'blocked-pinner' AND NOT inspected", expect=3)]
    assert "client pins certificates: passed through" not in notes
    assert notes.count("client rejected the proxy certificate") == 3


def test_pinning_is_not_a_way_around_dlp(proxy_with):
    proxy = proxy_with("dlp:\n  secrets: block\n")
    for _ in range(2):
        assert not _passes_through(proxy, "dlp-pinner")


@pytest.mark.parametrize(
    "policy",
    [
        # A tenant restriction: the header must be added to every request (red-team F49).
        "rules:\n  - {id: corp-only, match: {host: api.openai.com}, action: allow,"
        " headers: {ChatGPT-Allowed-Workspace-Id: corp}}\n",
        "budgets:\n  - {id: rpm, per: user, match: {provider: openai}, requests_per_minute: 1}\n",
        "budgets:\n  - {id: tok, per: user, match: {model: 'gpt-4o*'}, tokens_per_day: 10}\n",
        "mcp:\n  servers:\n    - {id: gh, host: api.openai.com, deny_tools: ['delete_*']}\n",
    ],
    ids=["tenant-header", "request-budget", "model-budget", "mcp-policy"],
)
def test_pinning_is_not_a_way_around_headers_budgets_or_mcp(proxy_with, policy):
    proxy = proxy_with(policy)
    user = f"pinner-{len(policy)}"  # one per case: the proxy remembers pinned clients for the session
    for _ in range(2):
        assert not _passes_through(proxy, user)
    notes = [r["inspect_note"] for r in proxy.rows(f"user_name = '{user}' AND NOT inspected", expect=2)]
    assert "client pins certificates: passed through" not in notes
