"""End-to-end harness: a real mitmdump with shadowgate, a fake upstream, real clients over TLS.

A mitmdump start costs ~3 s, so one proxy serves every test that needs only the defaults (the
session-scoped `proxy`), and a test that needs other options changes them at run time with
`proxy.options(...)` (tests/support/option_control.py), as an operator's change would, instead of
starting its own. `fresh_proxy` is for what only a start shows: start-up itself, stop and restart,
the environment, several instances.

Every test that starts a real proxy is marked `e2e` here (by the fixtures it uses), so
`pytest -m "not e2e"` runs the fast set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import duckdb
import httpx
import httpx2
import pytest
import trustme

from shadowgate.demo.fakeupstream import FakeUpstream
from shadowgate.demo.fakeupstream import load_cases
from tests.support.bytecode import cache_bytecode
from tests.support.forked import ForkedMitmdump
from tests.support.forked import start_mitmdump
from tests.support.option_control import CONTROL_HOST
from tests.support.option_control import ENVIRON_HEADER
from tests.support.option_control import HEADER as OPTIONS_HEADER
from tests.support.schedule import slowest_files_first

ROOT = Path(__file__).resolve().parent.parent
cache_bytecode(ROOT)  # before the workers, the fork server and any command start
MITMDUMP = str(Path(sys.executable).parent / "mitmdump")
DEBUG_ARGS = ["--set", "termlog_verbosity=debug"] if os.environ.get("SG_DEBUG") else []
OPTION_CONTROL = ROOT / "tests" / "support" / "option_control.py"

# Every host the fake upstream answers for; the proxy verifies its certificate for these names.
TEST_HOSTS = sorted(
    {c["host"].rsplit(":", 1)[0] for c in load_cases().values()}
    | {
        "api.openai.com",
        "api.anthropic.com",
        "generativelanguage.googleapis.com",
        "api.openai.com.evil.example",
        "notopenai.com",
        "llm.internal.test",
        "pinned.example",
        "example.com",
        "chatgpt.com",
        "claude.ai",
        "files.oaiusercontent.com",  # ChatGPT's file storage (tests/adversarial/test_webapp_uploads.py)
        "ollama.com",
        "llm.corp.test",
        "login.microsoftonline.com",
        "api.githubcopilot.com",
        "acme-ws.cloud.databricks.com",  # an AI feature on a shared host (catalog entry with paths)
        "r.jina.ai",  # APIs whose input is the URL (tests/adversarial/test_url_inputs.py)
        "s.jina.ai",
        "localhost",
        # catalogued AI services without wire formats (tests/adversarial/test_uncatalogued_formats.py)
        "gptunnel.ru",
        "bedrock-agent-runtime.us-east-1.amazonaws.com",
        "api.elevenlabs.io",
        "notebooklm.google.com",
        # gateways that name models outside the body's `model` (tests/adversarial/test_model_elsewhere.py)
        "api.portkey.ai",
        "gateway.ai.cloudflare.com",
        "us-east5-aiplatform.googleapis.com",  # Vertex AI (Claude on v1beta1, tests/adversarial/test_model_elsewhere.py)
        # routes and hosts of the catalog (tests/adversarial/test_catalog_routes.py)
        "europe-west8-aiplatform.googleapis.com",
        "api.mistral.ai",
        "codestral.mistral.ai",
        "api.groq.com",
        "copilot-proxy.githubusercontent.com",
        "eastus.api.cognitive.microsoft.com",
        "api.together.xyz",
    }
)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory) -> trustme.CA:
    return trustme.CA()


def start_upstream(test_ca: trustme.CA, folder: Path) -> FakeUpstream:
    """The fake providers on 127.0.0.1, with a certificate for every TEST_HOSTS name."""
    cert = test_ca.issue_cert(*TEST_HOSTS, "127.0.0.1")
    cert_pem, key_pem = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_pem))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_pem), append=True)
    cert.private_key_pem.write_to_path(str(key_pem))
    return FakeUpstream(str(cert_pem), str(key_pem)).start()


@pytest.fixture(scope="session")
def upstream(test_ca, tmp_path_factory) -> Iterator[FakeUpstream]:
    fake = start_upstream(test_ca, tmp_path_factory.mktemp("upstream"))
    yield fake
    fake.stop()


class OptionRejected(RuntimeError):
    """The running proxy refused an option change (its OptionsError); nothing changed."""


@dataclass
class Proxy:
    port: int
    confdir: Path
    db: Path
    process: subprocess.Popen | ForkedMitmdump
    log_path: Path
    test_ca_pem: Path
    # Where option changes go, if not `port` (an upstream-mode listener hands requests on).
    control_port: int | None = None
    # log() starts here: a test sharing the session proxy reads only what was logged in its time.
    log_offset: int = 0
    # The harness's control requests pass its proxy authentication (any user, or none).
    controllable: bool = True
    # One kept-alive connection for option changes, opened on first use: its connect and
    # disconnect are logged once, not around every change (test_logs counts those lines).
    _control: httpx.Client | None = field(default=None, init=False, repr=False)

    def set_options(self, values: dict, user: str = "sg-options") -> dict:
        """Apply option values at run time; returns the previous values. Raises OptionRejected."""
        return self._change(values, {}, user)[0]

    def _control_client(self, user: str = "sg-options") -> httpx.Client:
        if self._control is None:
            self._control = httpx.Client(
                proxy=f"http://{user}:pw@127.0.0.1:{self.control_port or self.port}",
                timeout=30,
                limits=httpx.Limits(max_keepalive_connections=1, keepalive_expiry=None),
            )
        return self._control

    def _change(self, values: dict, environ: dict, user: str = "sg-options") -> tuple[dict, dict]:
        """Set the proxy's environment, then its options: (previous options, previous environment)."""
        headers = {OPTIONS_HEADER: json.dumps(values), ENVIRON_HEADER: json.dumps(environ)}
        response = self._control_client(user).get(f"http://{CONTROL_HOST}/", headers=headers)
        if response.status_code != 200:
            raise OptionRejected(response.json()["error"])
        return response.json()["previous"], response.json()["environ"]

    @contextlib.contextmanager
    def options(self, environ: dict[str, str | None] | None = None, **values) -> Iterator[Proxy]:
        """These options (and environment variables, None to remove one) for the block, then the
        previous values again."""
        previous, previous_environ = self._change(values, environ or {})
        try:
            yield self
        finally:
            self._change(previous, previous_environ)

    @property
    def ca_pem(self) -> Path:
        return self.confdir / "mitmproxy-ca-cert.pem"

    def url(self, user: str = "alice") -> str:
        return f"http://{user}:pw@127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the proxy's CA (decrypted hosts) and the test CA (passed-through hosts)."""
        context = ssl.create_default_context(cafile=str(self.ca_pem))
        context.load_verify_locations(cafile=str(self.test_ca_pem))
        return context

    def test_ssl_context(self) -> ssl.SSLContext:
        """Trusts only the upstream's test CA: a client that would reject the proxy's certificate."""
        return ssl.create_default_context(cafile=str(self.test_ca_pem))

    def proxy_only_ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_pem))

    def client(self, user: str = "alice", **kwargs) -> httpx.Client:
        return httpx.Client(proxy=self.url(user), verify=self.ssl_context(), **{"timeout": 30, **kwargs})

    def sdk_http(self, user: str = "alice", **kwargs) -> httpx2.Client:
        """The HTTP client the official openai and anthropic SDKs take (they moved to httpx2)."""
        return httpx2.Client(proxy=self.url(user), verify=self.ssl_context(), timeout=30, **kwargs)

    def flush(self) -> None:
        """Have the running proxy seal the rows submitted so far, instead of waiting for the
        writer's one-second clock (tests/support/option_control.py). A stopped proxy: nothing."""
        if not self.controllable or not self.alive():
            return
        try:
            self._control_client().get(f"http://{CONTROL_HOST}/flush")
        except httpx.HTTPError:
            pass  # stopping, or not answering: the rows are read as they are

    def rows(
        self,
        sql_where: str = "true",
        expect: int | None = None,
        timeout: float = 10.0,
        table: str = "ai_requests",
        flush: bool = True,
    ) -> list[dict]:
        """Rows of a table (ai_requests by default), sealed on request (flush), waiting until
        `expect` rows match. flush=False: only what the writer sealed on its own clock."""
        deadline = time.monotonic() + timeout
        while True:
            if flush:
                self.flush()
            con = duckdb.connect(str(self.db), read_only=True)
            try:
                order = "ts" if table in ("policy_events", "host_sightings") else "ts, request_id"
                cur = con.execute(f"SELECT * FROM {table} WHERE {sql_where} ORDER BY {order}")
                names = [d[0] for d in cur.description]
                found = [dict(zip(names, r)) for r in cur.fetchall()]
            finally:
                con.close()
            if expect is None or len(found) >= expect or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_proxy(
    folder: Path,
    upstream: FakeUpstream,
    test_ca: trustme.CA,
    *extra: str,
    proxyauth: str = "any",
    entry: Path | None = None,
    db: Path | None = None,
    upstream_port: int | None = None,
    watch_log: Path | None = None,
) -> Proxy:
    """watch_log: the proxy logs there (shadowgate_log_file), so look for its port there too.
    upstream_port=0 turns the redirect to the fake upstream off (give it here, not as a second
    --set: mitmdump then fails to register every script loaded after upstream_redirect.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    test_ca_pem = folder / "test-ca.pem"
    test_ca.cert_pem.write_to_path(str(test_ca_pem))
    confdir = folder / "conf"
    db = db or folder / "shadowgate.duckdb"
    log_path = folder / "mitmdump.log"
    args = [
        MITMDUMP,
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        "0",
        "--set",
        f"confdir={confdir}",
        "--set",
        f"ssl_verify_upstream_trusted_ca={test_ca_pem}",
        *(["--set", f"proxyauth={proxyauth}"] if proxyauth else []),
        "--set",
        "flow_detail=0",
        *DEBUG_ARGS,
        "-s",
        str(entry or ROOT / "addons" / "shadowgate.py"),
        "-s",
        str(ROOT / "addons" / "shadowgate" / "demo" / "upstream_redirect.py"),
        "-s",
        str(OPTION_CONTROL),
        "--set",
        f"test_upstream_port={upstream.port if upstream_port is None else upstream_port}",
        "--set",
        f"shadowgate_db={db}",
        *extra,
    ]
    process = start_mitmdump(args, ROOT, log_path)
    # 30 s was not enough with the 2 cores loaded by several suites at once (load average 11).
    deadline = time.monotonic() + 60
    port = None
    while time.monotonic() < deadline and port is None:
        if process.poll() is not None:
            raise RuntimeError(f"mitmdump exited with {process.returncode}:\n{log_path.read_text()}")
        text = log_path.read_text(errors="replace")
        if watch_log is not None and watch_log.exists():
            text += watch_log.read_text(errors="replace")
        m = re.search(r"listening at 127\.0\.0\.1:(\d+)", text)
        if m:
            port = int(m.group(1))
        else:
            time.sleep(0.05)
    if port is None:
        process.kill()
        raise RuntimeError(f"mitmdump did not start:\n{log_path.read_text()}")
    # A bad option is logged before "listening"; mitmdump exits with rc=1 just after it.
    if "error in script" in log_path.read_text(errors="replace"):
        process.wait(60)
        raise RuntimeError(f"mitmdump exited with {process.returncode}:\n{log_path.read_text()}")
    return Proxy(port, confdir, db, process, log_path, test_ca_pem, controllable=proxyauth in ("any", ""))


@pytest.fixture(scope="session")
def proxy(tmp_path_factory, upstream, test_ca) -> Iterator[Proxy]:
    """One proxy with the defaults for the whole session; `proxy.options(...)` for other options."""
    p = start_proxy(tmp_path_factory.mktemp("proxy"), upstream, test_ca)
    yield p
    p.stop()


def _borrow(proxy: Proxy, folder: Path, stack: contextlib.ExitStack) -> Callable[..., Proxy]:
    """apply(policy=None, environ=None, **options): the session proxy with these options (this
    policy text as shadowgate_policy, these environment variables) and a database under `folder`
    until `stack` closes, then its previous options again."""
    count = itertools.count()

    def apply(policy: str | None = None, environ: dict[str, str | None] | None = None, **options) -> Proxy:
        db = folder / f"own{next(count)}" / "shadowgate.duckdb"
        db.parent.mkdir(parents=True)
        if policy is not None:
            (db.parent / "policy.yaml").write_text(policy)
            options["shadowgate_policy"] = str(db.parent / "policy.yaml")
        offset = proxy.log_path.stat().st_size
        stack.enter_context(proxy.options(environ, shadowgate_db=str(db), **options))
        own = dataclasses.replace(proxy, db=db, log_offset=offset)
        own._control = proxy._control_client()  # one kept-alive control connection, not one per test
        return own

    return apply


@pytest.fixture
def proxy_with(proxy, tmp_path) -> Iterator[Callable[..., Proxy]]:
    """proxy_with(policy=None, environ=None, **options): the session proxy with these options (and
    this policy text as shadowgate_policy, these environment variables) and a database of its own
    until the test ends, so that its rows, segments and log() are the test's alone, as with a proxy
    of its own, without the start. Its memory (pinned clients, budgets, coach consent) is shared
    with the session: give each test users of its own."""
    with contextlib.ExitStack() as stack:
        yield _borrow(proxy, tmp_path, stack)


@pytest.fixture(scope="module")
def module_proxy_with(proxy, tmp_path_factory) -> Iterator[Callable[..., Proxy]]:
    """proxy_with for a whole test module: the options hold until the module's last test ends
    (xdist runs a file on one worker, in order, so no other module sees them). For a module that
    used to start a proxy of its own only for its policy or options."""
    with contextlib.ExitStack() as stack:
        yield _borrow(proxy, tmp_path_factory.mktemp("module-proxy"), stack)


@pytest.fixture
def fresh_proxy(tmp_path, upstream, test_ca):
    """A proxy of one's own, for what only a start shows: start-up, stop and restart, the
    environment, several instances, state that would leak into other tests. For other options,
    `proxy.options(...)` is ~3 s cheaper."""
    started: list[Proxy] = []

    def start(
        *extra: str,
        proxyauth: str = "any",
        entry: Path | None = None,
        db: Path | None = None,
        upstream_port: int | None = None,
        watch_log: Path | None = None,
    ) -> Proxy:
        p = start_proxy(
            tmp_path / f"proxy{len(started)}",
            upstream,
            test_ca,
            *extra,
            proxyauth=proxyauth,
            entry=entry,
            db=db,
            upstream_port=upstream_port,
            watch_log=watch_log,
        )
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


os.environ.setdefault("NO_PROXY", "")


# Two xdist workers unless told otherwise (-n N, -n 0, -p no:xdist, --pdb): the suite mostly waits
# on proxies, servers, browsers and the writer's one-second seals, so two workers keep both cores
# busy. Whole files go to a worker (loadfile), so module-scoped proxies start once. Each worker has
# its own session proxy, fake upstream, fork server and temporary folders. Set here rather than in
# addopts so that `pytest -p no:xdist` still runs (addopts' -n would be an unknown option then).
DEFAULT_WORKERS = 2


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    option = config.option
    if (
        config.pluginmanager.hasplugin("xdist")
        and not hasattr(config, "workerinput")  # an xdist worker itself
        and getattr(option, "numprocesses", 0) is None
        and getattr(option, "dist", "no") == "no"
        and not option.usepdb
        and not option.collectonly
    ):
        option.numprocesses = int(os.environ.get("SG_TEST_WORKERS", DEFAULT_WORKERS))
        if option.numprocesses:
            option.dist = "loadfile"
            option.loadscopereorder = False  # the files in the order the workers collected them:
            # the longest first (tests/support/schedule.py), not those with the most tests


# Tests that start a proxy (or the whole demo) through a command rather than the fixtures above.
PROXY_BY_COMMAND = (
    "tests/test_soak.py::",
    "tests/test_wheel.py::",
    "tests/test_security.py::test_proxy_listens_on_loopback_unless_told_otherwise",
    "tests/test_security.py::test_the_proxy_needs_no_network_but_its_upstream",
    "tests/test_deploy.py::test_systemd_unit_options_are_real_options",
)


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture parameters
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `e2e` every test that starts a real proxy: each proxy fixture (proxy, fresh_proxy and
    the modules' own, which call start_proxy) needs the fake upstream and the test CA. In an xdist
    worker, the slowest files come first (every worker sorts alike, as xdist requires)."""
    if hasattr(config, "workerinput"):
        slowest_files_first(items, ROOT)
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        if uses & {"upstream", "test_ca"} or item.nodeid.startswith(PROXY_BY_COMMAND):
            item.add_marker(pytest.mark.e2e)
