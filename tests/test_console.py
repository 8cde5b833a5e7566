"""`shadowgate serve`: the web console, started for real on a loopback port over the report tests' rows."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import shlex
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
from shadowgate.storage.rows import AlertRow
from shadowgate.storage.schema import AI_REQUESTS
from shadowgate.storage.schema import AI_REQUESTS_DAILY
from shadowgate.storage.schema import ALERTS
from shadowgate.storage.schema import MCP_CALLS
from shadowgate.storage.schema import POLICY_EVENTS
from shadowgate.storage.schema import WEB_ACTIVITY
from shadowgate.storage.schema import WEB_ACTIVITY_DAILY
from shadowgate.storage.store import SegmentWriter
from tests.test_coach_browser import CHROMIUM
from tests.test_coach_browser import DevTools
from tests.test_report import EVENTS
from tests.test_report import MCP_ROWS
from tests.test_report import POLICY
from tests.test_report import ROWS
from tests.test_report import SHADOWGATE
from tests.test_report import row
from tests.test_webapps_report import WEB_ROWS

PASSWORD = "correct horse battery"
EVIL = '<img src=x onerror="alert(1)">'
# Outside the report tests' weeks (W45), so their numbers stay as they are: a name that is HTML.
EXTRA_ROWS = [row("2026-11-03 10:00:00", EVIL, "eng", "openai", "api.openai.com", category="api", model="gpt-4o")]


def alert(ts: str, rule: str, event: str, key: str, user: str | None = None, delivered: bool = True, **kw) -> AlertRow:
    return AlertRow(
        dt.datetime.fromisoformat(ts), rule, event, key, f"{event}: {key}", user, kw.get("host"), kw.get("provider"),
        "secops", delivered, None if delivered else "secops: connection refused", kw.get("suppressed", 0),
    )  # fmt: skip


# Alerts of the report tests' week 2026-W47 (and one of the week before, which the week's page must not count).
ALERT_ROWS = [
    alert("2026-11-16 10:01:00", "new-apps", "new_app", "deepseek", "bob", provider="deepseek"),
    alert("2026-11-16 11:00:00", "dlp", "dlp_block", "carol|api.anthropic.com", "carol", suppressed=2),
    alert("2026-11-17 09:00:00", "dlp", "dlp_block", "bob|chatgpt.com", "bob", delivered=False),
    alert("2026-11-17 12:00:00", "crowd", "unapproved_users", "deepseek|2", "bob", provider="deepseek"),
    alert("2026-11-18 08:00:00", "budgets", "budget_crossed", "daily|carol|near", "carol"),
    alert("2026-11-18 08:30:00", "budgets", "budget_crossed", "daily|carol", "carol"),
    alert("2026-11-19 10:00:00", "broken", "storage_failure", "storage"),
    alert("2026-11-10 10:00:00", "dlp", "dlp_block", "old|api.openai.com", "old"),
]
SEVERITY = {"new_app": "low", "dlp_block": "high", "unapproved_users": "medium", "storage_failure": "high"}


def write_console_db(db: Path) -> Path:
    """The report tests' rows, their MCP calls and events, chat-app activity and alerts, as the proxy writes them."""
    writer = SegmentWriter(
        db,
        [AI_REQUESTS, POLICY_EVENTS, MCP_CALLS, ALERTS, WEB_ACTIVITY],
        rollups=[AI_REQUESTS_DAILY, WEB_ACTIVITY_DAILY],
        flush_interval=0.05,
    )
    writer.start()
    tables = {"ai_requests": ROWS + EXTRA_ROWS, "policy_events": EVENTS, "mcp_calls": MCP_ROWS}
    tables |= {"alerts": ALERT_ROWS, "web_activity": WEB_ROWS}
    for table, rows in tables.items():
        for r in rows:
            writer.submit(table, r)
    assert writer.flush()
    writer.close()
    return db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console")
    db = write_console_db(folder / "sg.duckdb")
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


def test_refuses_to_start_without_accounts_and_the_hint_adds_one_where_it_looks(tmp_path):
    empty = tmp_path / "my console.passwd"
    r = subprocess.run(
        [sys.executable, "-m", "shadowgate.cli.serve", "--passwords", str(empty), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "no accounts" in r.stderr
    # Following the hint word for word adds the account to the file this console reads.
    hint = shlex.split(r.stderr.split("add one with: ", 1)[1].replace("NAME", "alice"))
    assert hint[:2] == ["shadowgate", "serve"]
    added = subprocess.run(
        [SHADOWGATE, *hint[1:], "--password-stdin"], input=PASSWORD + "\n", capture_output=True, text=True, timeout=60
    )
    assert added.returncode == 0, added.stderr
    assert verify_password(PASSWORD, read_passwords(empty)["alice"])


def test_every_page_needs_a_login(console):
    base, *_ = console
    c = client(base)
    for path in ("/", "/users", "/users/alice", "/new", "/dlp", "/mcp", "/alerts", "/?week=2026-W47"):
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
    assert set(cards) == set(doc["headline"]) | {"alerts"}
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


class Tables(HTMLParser):
    """{h2 title: [[cell text, ...], ...]} of a page's tables (header row first)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._title = ""
        self._in: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "h2":
            self._in, self._title = "h2", ""
        elif tag == "table":
            self.tables[self._title] = []
        elif tag == "tr":
            self.tables[self._title].append([])
        elif tag in ("td", "th"):
            self._in = "cell"
            self.tables[self._title][-1].append("")

    def handle_endtag(self, tag):
        if tag in ("h2", "td", "th"):
            self._in = None

    def handle_data(self, data):
        if self._in == "h2":
            self._title += data
        elif self._in == "cell":
            self.tables[self._title][-1][-1] += data

    def records(self, title: str) -> list[dict[str, str]]:
        head, *rows = self.tables.get(title, [[]])
        return [dict(zip(head, r)) for r in rows]


def db_rows(db: Path, sql: str) -> list[tuple]:
    """Straight from the database file's own views, as an analyst would query it: not the console's SQL."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_alerts_page_counts_equal_the_database(console):
    base, db, *_ = console
    expected = db_rows(
        db,
        "SELECT event, rule_id, count(*), count(*) FILTER (WHERE NOT delivered), sum(suppressed), "
        "count(DISTINCT alert_key) FROM alerts WHERE ts >= '2026-11-16' AND ts < '2026-11-23' GROUP BY ALL",
    )
    assert sum(r[2] for r in expected) == 7  # the week's alerts; the one of 2026-11-10 is not in it
    c = login(base)
    page = Tables(c.get("/alerts?week=2026-W47").text)
    shown: dict[tuple[str, str], list[int]] = {}
    for r in page.records("Alerts by type"):  # a row per severity, event and rule: summed per event and rule
        counts = shown.setdefault((r["event"], r["rule id"]), [0, 0, 0, 0])
        for i, column in enumerate(("alerts", "not delivered", "suppressed", "keys")):
            counts[i] += int(r[column])
    assert shown == {(e, rule): [n, failed, suppressed, keys] for e, rule, n, failed, suppressed, keys in expected}
    severities = {(r["event"], r["severity"]) for r in page.records("Alerts by type")}
    # A budget that refused a call is medium; one only nearly used, low.
    assert severities == {*SEVERITY.items(), ("budget_crossed", "medium"), ("budget_crossed", "low")}
    recent = page.records("Latest 50 alerts")
    assert [r["ts"][:16] for r in recent] == sorted(
        (a.ts.strftime("%Y-%m-%d %H:%M") for a in ALERT_ROWS if a.ts >= dt.datetime(2026, 11, 16)), reverse=True
    )
    assert {r["severity"] for r in recent if r["summary"].endswith("daily|carol|near")} == {"low"}
    # The overview links to it with the week's count, and every page's navigation has it.
    overview = c.get("/?week=2026-W47").text
    assert Cards(overview).values["alerts"] == "7"
    assert 'href="/alerts?week=2026-W47"' in overview and "3 high" in overview  # two DLP blocks, one storage failure
    assert "1 not delivered" in overview


@pytest.mark.parametrize(
    ("query", "events"),
    [
        ("event=dlp_block", {"dlp_block"}),
        ("severity=high", {"dlp_block", "storage_failure"}),
        ("severity=low", {"new_app", "budget_crossed"}),
        ("severity=medium&event=budget_crossed", {"budget_crossed"}),
        ("severity=low&event=dlp_block", set()),
    ],
)
def test_alerts_page_filters_by_type_and_severity(console, query, events):
    base, db, *_ = console
    c = login(base)
    text = c.get(f"/alerts?week=2026-W47&{query}").text
    page = Tables(text)
    recent = page.records("Latest 50 alerts")
    assert {r["event"] for r in recent} == events
    wanted = dict(q.split("=") for q in query.split("&"))
    if "severity" in wanted:
        assert {r["severity"] for r in recent} <= {wanted["severity"]}
    assert sum(int(r["alerts"]) for r in page.records("Alerts by type")) == len(recent)
    # The week picker keeps the filters: a hidden field for each.
    for key, value in wanted.items():
        assert f'<input type="hidden" name="{key}" value="{value}">' in text


def test_alerts_page_refuses_an_unknown_filter(console):
    base, *_ = console
    c = login(base)
    for query in ("event=drop_table", "severity=urgent", "event=%3Cb%3E"):
        r = c.get(f"/alerts?week=2026-W47&{query}")
        assert r.status_code == 400 and "<b>" not in r.text


def test_a_range_of_days_equals_the_same_week_and_a_long_or_bad_range_is_refused(console):
    base, *_ = console
    c = login(base)
    week = Cards(c.get("/?week=2026-W47").text).values
    days = c.get("/?since=2026-11-16&until=2026-11-22").text
    assert Cards(days).values == week
    assert 'href="/users?since=2026-11-16&amp;until=2026-11-22"' in days  # the links keep the period
    for query in ("since=2024-01-01&until=2026-11-22", "since=yesterday", "since=2026-11-22&until=2026-11-16"):
        assert c.get(f"/?{query}").status_code == 400, query


def test_user_drill_down_has_chat_apps_mcp_budgets_and_alerts(console):
    base, db, policy, _ = console
    c = login(base)
    carol = Tables(c.get("/users/carol?week=2026-W47").text)
    [budget] = carol.records("Budgets")
    assert (budget["budget"], budget["max percent"], budget["refused"]) == ("daily-tokens", "85", "0")
    assert {r["event"] for r in carol.records("Alerts about this person")} == {"dlp_block", "budget_crossed"}
    dave = Tables(c.get("/users/dave?week=2026-W47").text)
    assert [(r["budget"], r["refused"]) for r in dave.records("Budgets")] == [("rpm-sales", "1"), ("daily-tokens", "0")]
    bob = Tables(c.get("/users/bob?week=2026-W47").text)
    chat = {(r["app"], r["activity"], r["account"]): int(r["requests"]) for r in bob.records("Chat apps")}
    expected = db_rows(
        db,
        "SELECT app, activity, account_kind, count(*) FROM web_activity WHERE user_name = 'bob' "
        "AND ts >= '2026-11-16' AND ts < '2026-11-23' GROUP BY ALL",
    )
    assert chat == {(a, act, acc): n for a, act, acc, n in expected} and chat
    alice = Tables(c.get("/users/alice?week=2026-W47").text)
    mcp = alice.records("MCP servers and tools")
    calls = db_rows(
        db,
        "SELECT count(*) FROM mcp_calls WHERE user_name = 'alice' AND ts >= '2026-11-16' AND ts < '2026-11-23'",
    )
    assert sum(int(r["calls"]) for r in mcp) == calls[0][0] > 0
    daily = alice.records("Decisions and DLP day by day")
    assert sum(int(r["requests"]) for r in daily) == int(
        Cards(c.get("/users/alice?week=2026-W47").text).values["requests"]
    )


def test_dlp_page_equals_the_report_json(console):
    base, db, policy, _ = console
    doc = report_json(db, policy, "2026-W47")
    page = Tables(login(base).get("/dlp?week=2026-W47").text)
    by_type = [(r["type"], int(r["requests"]), int(r["findings"])) for r in page.records("DLP findings by type")]
    assert by_type == [(r["type"], r["requests"], r["findings"]) for r in doc["dlp"]["by_type"]] and by_type
    chat = {r["app"]: int(r["prompts"]) for r in page.records("Chat apps: prompts, uploads and accounts")}
    assert chat == {r["app"]: r["prompts"] for r in doc["chat_apps"]["by_app"]} and chat
    daily = page.records("Decisions and DLP day by day")
    assert sum(int(r["requests"]) for r in daily) == doc["headline"]["requests"]["value"]
    assert sum(int(r["blocked"]) for r in daily) == sum(a["blocked"] for a in doc["apps"])
    assert sum(int(r["dlp hits"]) for r in daily) == sum(r["requests"] for r in doc["dlp"]["by_app"])


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
        browser.wait_for("location.pathname === '/' && document.querySelectorAll('#headline .card').length === 9")
        assert browser.evaluate("document.cookie") == ""  # HttpOnly: no script reads the session
        assert browser.evaluate("document.querySelectorAll('svg rect').length") > 5  # the charts drew
        assert browser.evaluate("getComputedStyle(document.querySelector('header')).display") == "flex"  # CSS loaded
        shots = Path(os.environ.get("CONSOLE_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)

        def screenshot(name: str) -> None:
            shot = base64.b64decode(
                browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
            )
            assert shot.startswith(b"\x89PNG") and len(shot) > 20_000
            (shots / f"{name}.png").write_bytes(shot)

        screenshot("overview")
        # The headline's alerts card leads to the alerts page; its filter form narrows it to high severity.
        browser.evaluate("document.querySelector('#alerts-card').click()")
        browser.wait_for("location.pathname === '/alerts' && document.readyState === 'complete'")
        assert browser.evaluate("document.querySelectorAll('svg rect').length") > 3  # the daily chart drew
        browser.evaluate("""
            document.querySelector('form.filters [name=severity]').value = 'high';
            document.querySelector('form.filters').submit();""")
        browser.wait_for("location.search.includes('severity=high') && document.readyState === 'complete'")
        latest = "[...document.querySelectorAll('table')].pop().querySelectorAll('tbody tr')"
        events = browser.evaluate(f"[...{latest}].map(tr => tr.children[2].textContent).join(',')")
        assert sorted(events.split(",")) == ["dlp_block", "dlp_block", "storage_failure"], events
        assert "week=2026-W47" in browser.evaluate("location.search")  # the period stays
        screenshot("alerts-high")
        # The other week, picked with the week picker, keeps the filter.
        browser.evaluate("""
            const form = document.querySelector('.periods form.picker');
            form.querySelector('select').value = form.querySelector('select').options[1].value;
            form.submit();""")
        browser.wait_for("location.search.includes('severity=high') && !location.search.includes('2026-W47')")
        for name, path in (("users", "/users"), ("user", "/users/carol"), ("new", "/new"), ("dlp", "/dlp"),
                           ("mcp", "/mcp"), ("alerts", "/alerts")):  # fmt: skip
            browser.call("Page.navigate", url=f"{base}{path}?week=2026-W47")
            browser.wait_for(f"location.pathname === '{path}' && document.readyState === 'complete'")
            assert browser.evaluate("document.querySelector('h1').textContent").endswith("2026-W47")
            # Nothing wider than the window: wide tables scroll inside their box, not the page.
            assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
            screenshot(name)
    finally:
        process.kill()
        process.wait()


def test_without_a_policy_every_page_renders_with_unknown_shares(console, tmp_path):
    """No --policy: nothing is sanctioned or unapproved, so the shares and their change are unknown (None)."""
    from starlette.testclient import TestClient

    from shadowgate.config.catalog import DEFAULT_CATALOG
    from shadowgate.console.app import make_app
    from shadowgate.console.auth import Authenticator
    from shadowgate.console.data import ReportCache
    from shadowgate.console.data import load_sources

    _, db, _, passwords = console
    app = make_app(ReportCache(load_sources(str(db), None, str(DEFAULT_CATALOG), 50), 0), Authenticator(passwords))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        token = csrf_of(c.get("/login").text)
        assert c.post("/login", data={"csrf": token, "user": "admin", "password": PASSWORD}).status_code == 200
        for path in ("/", "/users", "/users/carol", "/new", "/dlp", "/mcp", "/alerts"):
            page = c.get(f"{path}?week=2026-W47")
            assert page.status_code == 200, path
        cards = Cards(c.get("/?week=2026-W47").text).values
        assert cards["unapproved_share"] == "None" and cards["unknown_share"] == "1.0"


def test_a_console_without_data_says_so_at_start_up_and_on_every_page(tmp_path, capsys):
    """new-user F20: a wrong --db, or a console started before the proxy ever ran: the reason, not a 500."""
    from starlette.testclient import TestClient

    from shadowgate.cli import build_parser
    from shadowgate.cli.serve import build_app

    passwords = tmp_path / "console.passwd"
    set_password(passwords, "admin", PASSWORD)
    missing = tmp_path / "nothing.duckdb"
    args = build_parser().parse_args(["serve", "--db", str(missing), "--passwords", str(passwords)])
    app = build_app(args, passwords)
    assert f"no shadowgate data at {missing} yet" in capsys.readouterr().err
    with TestClient(app, base_url="http://127.0.0.1") as c:
        token = csrf_of(c.get("/login").text)
        login = c.post("/login", data={"csrf": token, "user": "admin", "password": PASSWORD}, follow_redirects=False)
        assert login.status_code == 303
        for path in ("/", "/users", "/new", "/alerts"):
            page = c.get(path)
            assert page.status_code == 503 and f"no shadowgate data at {missing}" in page.text, path
        write_console_db(missing)
        assert c.get("/?week=2026-W47").status_code == 200  # the data appeared: no restart needed
