"""Deployment: shadowgate chained in front of an existing corporate proxy (mitmproxy's upstream
mode), and the service definitions in deploy/ (systemd unit, Containerfile)."""

from __future__ import annotations

import asyncio
import base64
import configparser
import dataclasses
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Proxy
from tests.conftest import start_proxy

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class CorporateProxy:
    """A minimal HTTP CONNECT proxy standing in for the company's existing one.

    It records each CONNECT (authority and headers) and tunnels every one of them to the fake
    upstream on 127.0.0.1, whatever host was asked for: the fake answers for all test hosts.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connects: list[tuple[str, dict[str, str]]] = []
        self.refused: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="corporate-proxy", daemon=True)

    def start(self) -> CorporateProxy:
        self._thread.start()
        assert self._ready.wait(10), "the corporate proxy did not start"
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def authorities(self) -> list[str]:
        return [authority for authority, _ in self.connects]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, authority, _version = request_line.split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
            if method != "CONNECT":
                self.refused.append(request_line)
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                return
            self.connects.append((authority, headers))
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture(scope="module")
def corporate(upstream) -> Iterator[CorporateProxy]:
    corporate = CorporateProxy(upstream.port).start()
    yield corporate
    corporate.stop()


@pytest.fixture
def corporate_proxy(corporate) -> CorporateProxy:
    """The module's corporate proxy, with no CONNECT recorded yet."""
    corporate.connects.clear()
    corporate.refused.clear()
    return corporate


@pytest.fixture(scope="module")
def chained_proxy(tmp_path_factory, upstream, test_ca, corporate) -> Iterator[Proxy]:
    """One chained shadowgate for the module; a test that needs more options sets them at run time."""
    folder = tmp_path_factory.mktemp("chained")
    proxy = chained(lambda *extra, **kwargs: start_proxy(folder, upstream, test_ca, *extra, **kwargs), corporate)
    yield proxy
    proxy.stop()


def chained(fresh_proxy, corporate: CorporateProxy, *extra: str):
    """shadowgate in front of the corporate proxy, as deploy/README.md describes.

    The test harness's upstream_redirect addon rewrites the address of every server connection in
    server_connect; in upstream mode that connection is the one to the corporate proxy, so it would
    bypass the proxy under test. test_upstream_port=0 turns it off: the corporate proxy is then the
    only way to the fake upstream.

    The harness finds the port in mitmdump's "HTTP(S) proxy listening at" line, which upstream mode
    words "HTTP(S) proxy (upstream mode) listening at": a regular listener is started beside it for
    the harness, and the returned Proxy points at the upstream-mode listener (option changes go to
    the regular one: the upstream-mode listener hands plain HTTP requests on to the corporate proxy).
    """
    with socket.socket() as probe:  # two listeners cannot both ask for port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proxy = fresh_proxy(
        "--mode", "regular", "--mode", f"upstream:http://127.0.0.1:{corporate.port}@127.0.0.1:{port}", *extra,
        upstream_port=0,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while f"(upstream mode) listening at 127.0.0.1:{port}" not in proxy.log():
        assert time.monotonic() < deadline, proxy.log()
        time.sleep(0.05)
    # The harness took the first "listening at" line, which may be either listener's.
    regular = int(re.search(r"HTTP\(S\) proxy listening at 127\.0\.0\.1:(\d+)", proxy.log()).group(1))
    return dataclasses.replace(proxy, port=port, control_port=regular)


def test_chained_ai_request_goes_through_the_corporate_proxy_and_is_recorded(chained_proxy, corporate_proxy):
    proxy = chained_proxy
    with proxy.client("chained") as client:
        response = client.post("https://api.openai.com/v1/chat/completions", json=BODY)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["total_tokens"] > 0
    assert corporate_proxy.authorities == ["api.openai.com:443"]
    assert corporate_proxy.refused == []
    # The user's credentials for shadowgate are never handed on to the corporate proxy.
    assert "proxy-authorization" not in corporate_proxy.connects[0][1]
    [row] = proxy.rows("user_name = 'chained'", expect=1)
    assert row["provider"] == "openai" and row["host"] == "api.openai.com"
    assert row["inspected"] is True and row["status_code"] == 200
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0


def test_chained_non_ai_host_passes_through_the_corporate_proxy_undecrypted(chained_proxy, corporate_proxy):
    # upstream_auth set at run time: the next connection to the corporate proxy carries it.
    with chained_proxy.options(upstream_auth="shadowgate:s3cret") as proxy:
        # Trusting only the real (test) CA: this works only if shadowgate does not decrypt.
        with httpx.Client(proxy=proxy.url("plainweb"), verify=proxy.test_ssl_context(), timeout=10) as client:
            assert client.get("https://example.com/_fake/bytes?size=5").status_code == 200
    assert corporate_proxy.authorities == ["example.com:443"]
    # upstream_auth: shadowgate's own account on a corporate proxy that requires one.
    expected = "Basic " + base64.b64encode(b"shadowgate:s3cret").decode()
    assert corporate_proxy.connects[0][1]["proxy-authorization"] == expected
    assert proxy.rows("user_name = 'plainweb'", timeout=1.5) == []


# --- deploy/: the systemd unit and the container image ----------------------------------------

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
REPO_SHADOWGATE = Path(sys.executable).parent / "shadowgate"  # the venv's console script


def read_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",), comment_prefixes=("#", ";"))
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string((DEPLOY / "shadowgate.service").read_text())
    return unit


def unit_environment() -> dict[str, str]:
    """Environment= lines (repeated keys, which configparser keeps only the last of), then the
    EnvironmentFile example, as systemd applies them."""
    text = (DEPLOY / "shadowgate.service").read_text()
    env = dict(line.split("=", 1)[1].split("=", 1) for line in text.splitlines() if line.startswith("Environment="))
    for line in (DEPLOY / "shadowgate.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def exec_start(env: dict[str, str]) -> list[str]:
    """ExecStart as systemd runs it: "${X}" replaced within a word, a lone "$X" split at whitespace."""
    command = read_unit()["Service"]["ExecStart"].replace("\\\n", " ")
    words: list[str] = []
    for word in shlex.split(command):
        if word.startswith("$") and not word.startswith("${"):
            words += env[word[1:]].split()
        else:
            words.append(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], word))
    return words


def set_names(words: list[str]) -> list[str]:
    return [words[i + 1].split("=", 1)[0] for i, w in enumerate(words[:-1]) if w == "--set"]


def containerfile() -> dict[str, list[str]]:
    """Instruction -> its arguments (each a line with continuations joined), in order."""
    joined = re.sub(r"\\\n", " ", (DEPLOY / "Containerfile").read_text())
    found: dict[str, list[str]] = {}
    for line in joined.splitlines():
        if line.strip() and not line.startswith("#"):
            instruction, _, rest = line.strip().partition(" ")
            found.setdefault(instruction.upper(), []).append(rest.strip())
    return found


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The unit's paths, moved to this checkout so that systemd can check the command exists.
    text = (DEPLOY / "shadowgate.service").read_text()
    text = text.replace("/opt/shadowgate/.venv/bin/shadowgate", str(REPO_SHADOWGATE)).replace(
        "WorkingDirectory=/opt/shadowgate", f"WorkingDirectory={ROOT}"
    )
    (tmp_path / "shadowgate.service").write_text(text)
    done = subprocess.run([analyze, "verify", str(tmp_path / "shadowgate.service")], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_systemd_unit_runs_shadowgate_proxy_hardened():
    service = read_unit()["Service"]
    words = exec_start(unit_environment())
    assert words[0] == f"{service['WorkingDirectory']}/.venv/bin/shadowgate" and words[1] == "proxy"
    assert REPO_SHADOWGATE.exists(), "uv sync installs the shadowgate console script into .venv/bin"
    assert service["User"] == service["Group"] == "shadowgate"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "Restart": "on-failure", "CapabilityBoundingSet": ""}.items():  # fmt: skip
        assert service[key] == value, key
    assert int(service["LimitNOFILE"]) >= 65536
    options = dict(words[i + 1].split("=", 1) for i, w in enumerate(words[:-1]) if w == "--set")
    writable = service["ReadWritePaths"].split()
    assert options["confdir"] in writable
    assert str(Path(options["shadowgate_db"]).parent) in writable


def test_systemd_unit_options_are_real_options(tmp_path):
    """Every --set in ExecStart (and the example env file) names an option that mitmproxy or a
    shadowgate addon declares, with a value it accepts: mitmdump silently defers unknown names,
    so the command is run with --options, which loads the addons, applies the options and lists
    every declared option."""
    words = exec_start(unit_environment())
    names = set_names(words)
    assert {"confdir", "shadowgate_db", "proxyauth", "shadowgate_policy", "shadowgate_users"} <= set(names)
    # The paths, moved under tmp_path, with the files the example env file names.
    site, state = tmp_path / "etc", tmp_path / "var"
    site.mkdir()
    (site / "htpasswd").write_text("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    (site / "policy.yaml").write_text("mode: observe\n")
    (site / "users.yaml").write_text("users:\n  alice: {group: engineering}\n")
    args = [w.replace("/etc/shadowgate", str(site)).replace("/var/lib/shadowgate", str(state)) for w in words[2:]]
    done = subprocess.run(
        [str(REPO_SHADOWGATE), "proxy", *args, "--options"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    # A value mitmdump cannot parse exits 1; one an addon rejects is logged as "error in script".
    assert done.returncode == 0 and "error in script" not in done.stdout + done.stderr, done.stdout + done.stderr
    declared = {line.split(":", 1)[0] for line in done.stdout.splitlines() if re.match(r"[a-z_0-9]+:", line)}
    assert {"listen_port", "shadowgate_db", "shadowgate_otel_enabled", "upstream_auth"} <= declared
    assert [n for n in names if n not in declared] == []
    assert (state / "shadowgate.duckdb").exists()  # the options were applied, not only parsed
    assert (site / "mitmproxy" / "mitmproxy-ca-cert.pem").exists()
    # A misspelt option would have passed mitmdump silently: the check above is what catches it.
    assert "shadowgate_polcy" not in declared


def test_containerfile_runs_the_same_command_as_the_unit():
    image = containerfile()
    assert image["FROM"] == ["python:3.12-slim"]
    assert any("uv sync --frozen --no-dev" in run and "--no-install-project" not in run for run in image["RUN"])
    entrypoint = json.loads(image["ENTRYPOINT"][0])
    assert json.loads(image["CMD"][0]) == []
    # The unit with its defaults (port 8080, no site arguments) is the image's command.
    env = {**unit_environment(), "SHADOWGATE_ARGS": ""}
    assert entrypoint == exec_start(env)
    assert image["EXPOSE"] == ["8080"] and "--listen-port" in entrypoint
    assert entrypoint[entrypoint.index("--listen-port") + 1] == "8080"
    [user] = image["USER"]
    assert user not in ("root", "0")
    assert sorted(json.loads(image["VOLUME"][0])) == sorted(read_unit()["Service"]["ReadWritePaths"].split())
    [healthcheck] = image["HEALTHCHECK"]
    assert "CMD" in healthcheck and "8080" in healthcheck
    for copy in image["COPY"]:
        if not copy.startswith("--from"):
            for source in copy.split()[:-1]:
                assert (ROOT / source).exists(), source
