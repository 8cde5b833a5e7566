"""`shadowgate serve`: the web console, started for real on a loopback port over the report tests' rows."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from shadowgate.cli.serve import run_passwd
from shadowgate.console.app import safe_next
from shadowgate.console.auth import read_passwords
from shadowgate.console.auth import set_password
from shadowgate.console.auth import verify_password
from tests.test_coach_browser import CHROMIUM
from tests.test_coach_browser import DevTools
from tests.test_report import EVENTS
from tests.test_report import MCP_ROWS
from tests.test_report import POLICY
from tests.test_report import ROWS
from tests.test_report import SHADOWGATE
from tests.test_report import row
from tests.test_report import write_db

PASSWORD = "correct horse battery"
EVIL = '<img src=x onerror="alert(1)">'
# Outside the report tests' weeks (W45), so their numbers stay as they are: a name that is HTML.
EXTRA_ROWS = [row("2026-11-03 10:00:00", EVIL, "eng", "openai", "api.openai.com", category="api", model="gpt-4o")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console")
    db = write_db(folder / "sg.duckdb", ROWS + EXTRA_ROWS, EVENTS, mcp=MCP_ROWS)
    policy = folder / "policy.yaml"
    policy.write_text(textwrap.dedent(POLICY))
    passwords = folder / "console.passwd"
    set_password(passwords, "admin", PASSWORD)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shadowgate.cli.serve",
            "--db",
            str(db),
            "--policy",
            str(policy),
            "--passwords",
            str(passwords),
            "--port",
            str(port),
            "--cache-seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.stdout.read()
        try:
            httpx.get(base + "/login", trust_env=False)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the console did not start"
            time.sleep(0.2)
    yield base, db, policy, passwords
    process.terminate()
    process.wait(timeout=10)


def client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, trust_env=False, follow_redirects=False)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page)[1]


def login(base: str, user: str = "admin", password: str = PASSWORD) -> httpx.Client:
    c = client(base)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"csrf": token, "user": user, "password": password, "next": "/users"})
    assert r.status_code == 303 and r.headers["location"] == "/users", r.text
    return c


class Cards(HTMLParser):
    """data-metric -> data-value of the headline (or a person's totals) cards."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-metric" in a:
            self.values[a["data-metric"]] = a["data-value"]


def report_json(db: Path, policy: Path, week: str) -> dict:
    out = subprocess.run(
        [SHADOWGATE, "report", "--db", str(db), "--policy", str(policy), "--week", week, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


# --- accounts and sessions ------------------------------------------------------------------------------


def test_password_file_holds_salted_scrypt_hashes_readable_by_the_owner_only(tmp_path):
    passwords = tmp_path / "p"
    set_password(passwords, "a", "same password")
    set_password(passwords, "b", "same password")
    accounts = read_passwords(passwords)
    assert accounts["a"].startswith("scrypt$16384$8$1$") and accounts["a"] != accounts["b"]  # a salt each
    assert "same password" not in passwords.read_text()
    assert verify_password("same password", accounts["a"]) and not verify_password("same passworD", accounts["a"])
    assert not verify_password("same password", "scrypt$broken")
    assert passwords.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError):
        set_password(passwords, "a:b", "long enough")
    with pytest.raises(ValueError):
        set_password(passwords, "c", "short")


def test_passwd_helper_reads_stdin_and_replaces_a_password(tmp_path, monkeypatch):
    passwords = tmp_path / "p"
    for password in ("first password", "second password"):
        monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(password + "\n"))
        assert run_passwd(passwords, "alice", from_stdin=True) == 0
    encoded = read_passwords(passwords)["alice"]
    assert verify_password("second password", encoded) and not verify_password("first password", encoded)


def test_refuses_to_start_without_accounts(tmp_path):
    empty = tmp_path / "none.passwd"
    r = subprocess.run(
        [sys.executable, "-m", "shadowgate.cli.serve", "--passwords", str(empty), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "no accounts" in r.stderr


def test_every_page_needs_a_login(console):
    base, *_ = console
    c = client(base)
    for path in ("/", "/users", "/users/alice", "/new", "/mcp", "/?week=2026-W47"):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
        assert "alice" not in r.text and "Requests" not in r.text
    assert c.post("/logout").status_code == 403
    assert c.post("/").status_code == 405  # no page takes a POST


def test_wrong_password_or_name_is_refused(console):
    base, *_ = console
    for user, password in (("admin", PASSWORD + "x"), ("nobody", PASSWORD), ("admin", "")):
        c = client(base)
        token = csrf_of(c.get("/login").text)
        r = c.post("/login", data={"csrf": token, "user": user, "password": password})
        assert r.status_code == 303 and r.headers["location"].startswith("/login?error=1")
        assert "sg_session" not in c.cookies
        assert c.get("/").status_code == 303


def test_login_needs_the_csrf_token(console):
    base, *_ = console
    c = client(base)
    token = csrf_of(c.get("/login").text)
    right = {"user": "admin", "password": PASSWORD}
    assert c.post("/login", data=right).status_code == 403  # no token in the form
    other = client(base)
    other_token = csrf_of(other.get("/login").text)
    assert c.post("/login", data={**right, "csrf": other_token}).status_code == 403  # not this browser's
    forged = token.split(".")[0] + "." + "0" * 64
    c.cookies.set("sg_login_csrf", forged, path="/login")
    assert c.post("/login", data={**right, "csrf": forged}).status_code == 403  # not signed by the server
    bare = client(base)  # a cross-site form: SameSite=Strict keeps the cookie home, so no cookie
    assert bare.post("/login", data={**right, "csrf": token}).status_code == 403
    assert "sg_session" not in c.cookies and "sg_session" not in bare.cookies


def test_right_password_logs_in_with_a_strict_cookie_and_logout_ends_the_session(console):
    base, *_ = console
    c = client(base)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"csrf": token, "user": "admin", "password": PASSWORD, "next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/"  # never off-site
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("sg_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    page = c.get("/?week=2026-W47")
    assert page.status_code == 200 and "admin" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script at all
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text and "http://" not in page.text and "https://" not in page.text
    assert c.post("/logout", data={"csrf": "wrong"}).status_code == 403
    assert c.get("/").status_code == 200  # still logged in
    assert c.post("/logout", data={"csrf": csrf_of(page.text)}).status_code == 303
    old = c.cookies.get("sg_session")
    assert old is None or client(base).get("/", cookies={"sg_session": old}).status_code == 303


def test_safe_next_stays_on_the_console():
    assert safe_next("/users/alice?week=2026-W47") == "/users/alice?week=2026-W47"
    for target in ("//evil.example", "https://evil.example/", "/\\evil.example", "", None, "users"):
        assert safe_next(target) == "/"


# --- the numbers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("week", ["2026-W47", "2026-W46"])
def test_headline_and_apps_equal_the_report_json(console, week):
    base, db, policy, _ = console
    doc = report_json(db, policy, week)
    page = login(base).get(f"/?week={week}")
    assert page.status_code == 200
    cards = Cards(page.text).values
    assert set(cards) == set(doc["headline"])
    for key, metric in doc["headline"].items():
        assert float(cards[key]) == pytest.approx(metric["value"], abs=1e-9), key
    rows = re.findall(r'<tr><td>[^<]*</td><td>([^<]+)</td><td>[^<]*</td><td class="(\w+)">', page.text)
    assert rows == [(a["app"], a["status"]) for a in doc["apps"]]


def test_user_drill_down_shows_that_persons_rows(console):
    base, db, policy, _ = console
    doc = report_json(db, policy, "2026-W47")
    c = login(base)
    users = c.get("/users?week=2026-W47").text
    assert 'href="/users/carol?week=2026-W47"' in users
    page = c.get("/users/carol?week=2026-W47").text
    carol = next(u for u in doc["cost"]["by_user"] if u["user"] == "carol")
    totals = Cards(page).values
    assert int(totals["requests"]) == carol["requests"] and int(totals["tokens"]) == carol["tokens"]
    assert float(totals["cost_usd"]) == pytest.approx(carol["cost_usd"])
    for hers in ("unknown:lab.example", "claude-new", "llama-3-70b", "EMAIL", "redact", "sales"):
        assert hers in page
    for not_hers in ("gpt-4o", "deepseek", "chatgpt", "coach-chat"):
        assert not_hers not in page
    bob = c.get("/users/bob?week=2026-W47").text
    assert "block-deepseek" in bob and "coach_continue" in bob and "claude-new" not in bob
    nobody = c.get("/users/nobody?week=2026-W47").text
    assert Cards(nobody).values["requests"] == "0"


def test_new_apps_and_mcp_pages(console):
    base, db, policy, _ = console
    doc = report_json(db, policy, "2026-W47")
    c = login(base)
    new = c.get("/new?week=2026-W47").text
    for app in doc["new"]["apps"]:
        assert f"<td>{app['app']}</td>" in new
    assert "Possible AI services not in the catalog" in new
    mcp = c.get("/mcp?week=2026-W47").text
    for tool in doc["mcp"]["tools"]:
        assert f"<td>{tool['tool']}</td>" in mcp
    assert 'href="/users/sam?week=2026-W47"' in mcp


def test_names_from_the_data_are_escaped_and_a_bad_week_is_refused(console):
    base, *_ = console
    c = login(base)
    page = c.get("/users?week=2026-W45").text
    assert EVIL not in page and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page
    link = "/users/%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E?week=2026-W45"
    assert link in page
    person = c.get(link)  # the name reaches DuckDB as a bound variable and the page escaped
    assert person.status_code == 200 and EVIL not in person.text and Cards(person.text).values["requests"] == "1"
    assert c.get("/?week=2026-W99").status_code == 400
    assert c.get("/?week=<b>").status_code == 400 and "<b>" not in c.get("/?week=<b>").text


# --- in a real browser ----------------------------------------------------------------------------------


def test_chromium_logs_in_and_renders_the_overview(console, tmp_path):
    base, *_ = console
    assert CHROMIUM, "chromium is not installed"
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,1400",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            assert time.monotonic() < deadline and process.poll() is None, "chromium did not start"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", trust_env=False).json()
        browser = DevTools(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"])
        browser.call("Page.enable")
        browser.call("Page.navigate", url=f"{base}/?week=2026-W47")
        browser.wait_for("location.pathname === '/login' && document.readyState === 'complete'")
        browser.evaluate(f"""
            document.querySelector('[name=user]').value = 'admin';
            document.querySelector('[name=password]').value = {json.dumps(PASSWORD)};
            document.querySelector('form.login').submit();""")
        browser.wait_for("location.pathname === '/' && document.querySelectorAll('#headline .card').length === 8")
        assert browser.evaluate("document.cookie") == ""  # HttpOnly: no script reads the session
        assert browser.evaluate("document.querySelectorAll('svg rect').length") > 5  # the charts drew
        assert browser.evaluate("getComputedStyle(document.querySelector('header')).display") == "flex"  # CSS loaded
        shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
        assert shot.startswith(b"\x89PNG") and len(shot) > 20_000
        out = Path(os.environ.get("CONSOLE_SCREENSHOT", tmp_path / "overview.png"))
        out.write_bytes(shot)
    finally:
        process.kill()
        process.wait()
