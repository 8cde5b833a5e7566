"""The CA banner and `shadowgate ca --confdir`: the trust advice works for AI hosts through the
proxy and for every other HTTPS host, and the banner names the address the proxy listens on."""

from __future__ import annotations

import os
import re
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from mitmproxy import certs
from mitmproxy.test import taddons

from shadowgate.cli import main
from shadowgate.cli.ca import ensure_ca
from shadowgate.cli.ca import pem_certificates
from shadowgate.cli.ca import proxy_url
from shadowgate.cli.ca import system_roots_bundle
from shadowgate.cli.ca import write_ca_bundle
from shadowgate.stages.settings import ShadowgateSettings

ROOT = Path(__file__).resolve().parent.parent
SHADOWGATE = str(Path(sys.executable).parent / "shadowgate")
# In a subprocess, with the environment the banner advises: handshake (in memory) with a server
# whose certificate chains to the given CA file; prints "ok" or the verification error.
HANDSHAKE = """
import ssl, sys
server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_ctx.load_cert_chain(sys.argv[1], sys.argv[2])
client_ctx = ssl.create_default_context()  # the roots come from SSL_CERT_FILE, as in every Python client
c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
client = client_ctx.wrap_bio(c_in, c_out, server_hostname=sys.argv[3])
server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
for _ in range(10):
    for side in (client, server):
        try:
            side.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as e:
            print(type(e).__name__, e.verify_message if hasattr(e, "verify_message") else e)
            sys.exit(0)
    s_in.write(c_out.read())
    c_in.write(s_out.read())
print("ok")
"""


def banner_variable(banner: str, name: str) -> str:
    match = re.search(rf"\b{name}=(\S+)", banner)
    assert match, f"{name} not in the banner:\n{banner}"
    return match.group(1)


def handshake(cert: Path, key: Path, host: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", HANDSHAKE, str(cert), str(key), host],
        capture_output=True, text=True, timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("SSL_CERT", "REQUESTS_CA"))}, **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def servers(tmp_path):
    """A public site (its certificate from a root this machine trusts) and an AI host as the
    proxy presents it (its certificate from the proxy CA)."""
    public_root = trustme.CA()
    system_roots = tmp_path / "system-roots.pem"
    system_roots.write_bytes(public_root.cert_pem.bytes())
    public_cert = public_root.issue_cert("pypi.example")
    public_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "public.pem"))
    public_cert.private_key_pem.write_to_path(str(tmp_path / "public.key"))

    confdir = tmp_path / "conf"
    ca_pem = ensure_ca(confdir)
    store = certs.CertStore.from_store(confdir, "mitmproxy", 2048)
    entry = store.get_cert("api.openai.com", [])
    (tmp_path / "ai.pem").write_bytes(entry.cert.to_pem())
    (tmp_path / "ai.key").write_bytes(
        entry.privatekey.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return {
        "confdir": confdir,
        "ca_pem": ca_pem,
        "system_roots": system_roots,
        "public": (tmp_path / "public.pem", tmp_path / "public.key", "pypi.example"),
        "ai": (tmp_path / "ai.pem", tmp_path / "ai.key", "api.openai.com"),
    }


def test_python_advice_trusts_the_proxy_and_every_other_site(servers):
    from shadowgate.cli.ca import trust_instructions

    bundle = write_ca_bundle(servers["confdir"], servers["ca_pem"], servers["system_roots"])
    banner = trust_instructions(servers["ca_pem"], bundle, "http://127.0.0.1:8080")
    cert_file = banner_variable(banner, "SSL_CERT_FILE")
    assert banner_variable(banner, "REQUESTS_CA_BUNDLE") == cert_file == str(bundle)
    assert handshake(*servers["ai"], SSL_CERT_FILE=cert_file) == "ok"
    assert handshake(*servers["public"], SSL_CERT_FILE=cert_file) == "ok"
    # The old advice (the proxy CA alone) broke every call that does not pass the proxy.
    assert handshake(*servers["public"], SSL_CERT_FILE=str(servers["ca_pem"])).startswith("SSLCertVerificationError")
    # Node adds NODE_EXTRA_CA_CERTS to its own roots: the CA alone is right there; curl replaces.
    assert banner_variable(banner, "NODE_EXTRA_CA_CERTS") == str(servers["ca_pem"])
    assert banner_variable(banner, "CURL_CA_BUNDLE") == str(bundle)
    assert f"-file {servers['ca_pem']}" in banner  # Java's keytool imports the CA itself


def test_bundle_holds_this_machines_roots_and_the_ca_once(tmp_path):
    roots = system_roots_bundle()
    assert roots is not None, "this machine has a trusted-roots bundle (the Debian image, or certifi)"
    confdir = tmp_path / "conf"
    ca_pem = ensure_ca(confdir)
    write_ca_bundle(confdir, ca_pem, roots)
    bundle = write_ca_bundle(confdir, ca_pem, roots)  # again: rewritten, not appended to
    assert bundle is not None
    in_bundle = pem_certificates(bundle.read_bytes())
    system = pem_certificates(roots.read_bytes())
    assert len(in_bundle) == len(set(system)) + 1
    assert set(system) <= set(in_bundle) and pem_certificates(ca_pem.read_bytes())[0] in in_bundle
    ssl.create_default_context(cafile=str(bundle))  # OpenSSL loads the whole file
    assert not list(confdir.glob("*.tmp"))


def test_without_system_roots_the_banner_never_advises_the_ca_alone(servers):
    from shadowgate.cli.ca import trust_instructions

    assert write_ca_bundle(servers["confdir"], servers["ca_pem"], None) is None
    banner = trust_instructions(servers["ca_pem"], None)
    assert banner_variable(banner, "SSL_CERT_FILE") != str(servers["ca_pem"])
    assert banner_variable(banner, "REQUESTS_CA_BUNDLE") != str(servers["ca_pem"])


def test_ca_command_prepares_a_confdir_the_proxy_uses(tmp_path, capsys):
    confdir = tmp_path / "shared"
    assert main(["ca", "--confdir", str(confdir)]) == 0
    out = capsys.readouterr().out
    key_file = confdir / "shadowgate-fingerprint.key"
    assert str(key_file) in out and str(confdir / "shadowgate-ca-bundle.pem") in out
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes()
    assert re.fullmatch(rb"[0-9a-f]{64}\n", key)
    # A proxy started on this confdir fingerprints with that key, and a second run keeps it.
    settings = ShadowgateSettings()
    with taddons.context(settings) as tctx:
        tctx.configure(settings, confdir=str(confdir))
        assert settings.secret == key.strip()
    assert main(["ca", "--confdir", str(confdir)]) == 0
    assert key_file.read_bytes() == key


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--listen-host", "127.0.0.1"], "http://127.0.0.1:8080"),
        (
            ["-p", "9877", "--listen-host", "0.0.0.0", "--set", "proxyauth=any"],
            "http://<user>:<password>@<proxy-host>:9877",
        ),
        (["--listen-port=9876", "--listen-host=::1"], "http://[::1]:9876"),
        (["--listen-host", "127.0.0.1", "-p", "0"], "http://127.0.0.1:<port-in-the-listening-line>"),
        (["--set", "listen_port=9878", "--set", "listen_host=10.1.2.3"], "http://10.1.2.3:9878"),
        (["--listen-host", "127.0.0.1", "--mode", "regular@9879"], "http://127.0.0.1:9879"),
        (["--mode", "socks5", "--mode", "upstream:http://corp-proxy:3128@0.0.0.0:9880"], "http://<proxy-host>:9880"),
    ],
)
def test_proxy_url_follows_every_form_of_the_listen_arguments(args, expected):
    assert proxy_url(args) == expected


def test_proxy_banner_names_the_port_it_was_given(tmp_path):
    confdir = tmp_path / "conf"
    with socket.socket() as probe:  # a port free now, for the proxy to be given by number
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [SHADOWGATE, "proxy", "--listen-port", str(port), "--set", f"confdir={confdir}",
         "--set", f"shadowgate_db={tmp_path / 'b.duckdb'}"],
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        # The banner comes once the proxy listens (never before a start-up error); its last line
        # says where to point clients.
        stderr = ""
        while "HTTPS_PROXY=" not in stderr and (line := process.stderr.readline()):
            stderr += line
    finally:
        process.terminate()
        process.wait(60)
    assert banner_variable(stderr, "HTTPS_PROXY") == f"http://127.0.0.1:{port}"  # loopback unless told
    assert banner_variable(stderr, "SSL_CERT_FILE") == str(confdir / "shadowgate-ca-bundle.pem")
    assert (confdir / "shadowgate-ca-bundle.pem").is_file()


def test_a_confdir_that_cannot_take_the_bundle_does_not_stop_the_proxy(servers, tmp_path):
    # (As root, permissions stop no write: a folder that is gone stands for a read-only one.)
    gone = tmp_path / "gone"
    assert write_ca_bundle(gone, servers["ca_pem"], servers["system_roots"]) is None
    assert not gone.exists()
