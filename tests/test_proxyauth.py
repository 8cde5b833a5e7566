"""Proxy authentication end to end: mitmproxy's own proxyauth (htpasswd and LDAP) in front of shadowgate.

The proxy-auth user name becomes ai_requests.user_name, ahead of the network attribution map; refused
clients get a 407 and leave no row; the password never reaches the database or the log.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.ldap_server import FakeLdap

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
ALICE_PW = "Corr3ct-Horse-Battery"  # distinctive, so a leak is found by grepping for it
BOB_PW = "Tr0ub4dor-Staple-9"


def proxy_request(port: int, request_line: str, credentials: tuple[str, str] | None) -> tuple[int, dict[str, str]]:
    """Send one raw proxy request (a CONNECT or an absolute-form GET) and return the status and headers.

    Raw, because httpx turns a refused CONNECT into a ProxyError without the response headers."""
    auth = ""
    if credentials:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        auth = f"Proxy-Authorization: Basic {token}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(f"{request_line}\r\nHost: api.openai.com\r\n{auth}\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    status_line, *lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers


def assert_refused(port: int, credentials: tuple[str, str] | None) -> None:
    for request_line in ("CONNECT api.openai.com:443 HTTP/1.1", "GET http://api.openai.com/v1/models HTTP/1.1"):
        status, headers = proxy_request(port, request_line, credentials)
        assert status == 407, (request_line, credentials)
        assert headers.get("proxy-authenticate") == 'Basic realm="mitmproxy"'


def chat_as(proxy, user: str, password: str) -> httpx.Response:
    """A real HTTPS call to an AI host through the proxy, with these proxy credentials."""
    url = f"http://{user}:{password}@127.0.0.1:{proxy.port}"
    with httpx.Client(proxy=url, verify=proxy.ssl_context(), timeout=30) as client:
        return client.post("https://api.openai.com/v1/chat/completions", json=CHAT)


def assert_secret_nowhere(proxy, *secrets: str) -> None:
    """Neither the password nor its Basic token in any file the proxy wrote: DB, segments, log, conf."""
    proxy.stop()
    needles = {s.encode() for s in secrets} | {base64.b64encode(s.encode()) for s in secrets}
    files = [p for p in Path(proxy.db).parent.rglob("*") if p.is_file()]
    segments = [p for p in files if p.suffix == ".parquet"]
    assert proxy.log_path in files and any(b"gpt-4o-mini" in p.read_bytes() for p in segments)  # plain text is seen
    for path in files:
        data = path.read_bytes()
        assert not [n for n in needles if n in data], path


def attribution_map(folder: Path) -> Path:
    """A network map that would name everyone on 127.0.0.1 'dana': the proxy-auth user must win."""
    users = folder / "users.yaml"
    users.write_text(
        "networks:\n  - {cidr: 127.0.0.1/32, user: dana, group: data-science}\n"
        "users:\n  alice: {group: eng}\n  bob: {group: sales}\n"
    )
    return users


def test_htpasswd_refuses_without_valid_credentials_and_names_the_user(fresh_proxy, tmp_path):
    htpasswd = tmp_path / "htpasswd"
    sha = base64.b64encode(hashlib.sha1(BOB_PW.encode()).digest()).decode()
    alice_hash = bcrypt.hashpw(ALICE_PW.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"alice:{alice_hash}\nbob:{{SHA}}{sha}\n")
    proxy = fresh_proxy("--set", f"shadowgate_users={attribution_map(tmp_path)}", proxyauth=f"@{htpasswd}")

    assert_refused(proxy.port, None)
    assert_refused(proxy.port, ("alice", "wrong-password"))
    assert_refused(proxy.port, ("mallory", ALICE_PW))
    with pytest.raises(httpx.ProxyError, match="407"):
        chat_as(proxy, "alice", BOB_PW)

    assert chat_as(proxy, "alice", ALICE_PW).status_code == 200
    assert chat_as(proxy, "bob", BOB_PW).status_code == 200
    rows = proxy.rows("true", expect=2)
    assert [(r["user_name"], r["user_group"], r["status_code"]) for r in rows] == [
        ("alice", "eng", 200),
        ("bob", "sales", 200),
    ]
    # The refused attempts were sealed before the accepted ones: had they left rows, they would be here.
    assert len(proxy.rows("true")) == 2
    assert_secret_nowhere(proxy, ALICE_PW, BOB_PW, f"alice:{ALICE_PW}", f"bob:{BOB_PW}")


@pytest.fixture
def ldap_directory():
    with FakeLdap(
        passwords={"cn=svc,dc=example,dc=com": "svcpass", "uid=alice,ou=people,dc=example,dc=com": ALICE_PW},
        people={"alice": "uid=alice,ou=people,dc=example,dc=com"},
        key="uid",
    ) as directory:
        yield directory


def test_ldap_binds_as_the_person_and_names_them(fresh_proxy, ldap_directory, tmp_path):
    spec = (
        f"ldap:127.0.0.1:{ldap_directory.port}:cn=svc,dc=example,dc=com:svcpass"
        ":ou=people,dc=example,dc=com?search_filter_key=uid"
    )
    proxy = fresh_proxy("--set", f"shadowgate_users={attribution_map(tmp_path)}", proxyauth=spec)
    # mitmproxy binds with the service account when it reads the option, before it listens.
    assert ldap_directory.binds == [("cn=svc,dc=example,dc=com", True)]

    assert_refused(proxy.port, None)
    assert_refused(proxy.port, ("alice", "wrong-password"))
    assert_refused(proxy.port, ("bob", ALICE_PW))  # not in the directory: the search finds nobody
    assert chat_as(proxy, "alice", ALICE_PW).status_code == 200

    [row] = proxy.rows("true", expect=1)
    assert (row["user_name"], row["user_group"], row["status_code"]) == ("alice", "eng", 200)
    assert len(proxy.rows("true")) == 1
    alice_dn = "uid=alice,ou=people,dc=example,dc=com"
    assert [ok for dn, ok in ldap_directory.binds if dn == alice_dn] == [False, False, True]
    assert set(ldap_directory.searches) == {"alice", "bob"}
    assert_secret_nowhere(proxy, ALICE_PW, f"alice:{ALICE_PW}")
