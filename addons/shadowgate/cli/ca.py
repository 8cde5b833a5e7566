"""The proxy's CA, a trust bundle for runtimes that replace their roots, and how to use them.

`SSL_CERT_FILE` and `REQUESTS_CA_BUNDLE` replace a runtime's trusted roots: pointed at the proxy
CA alone, every HTTPS call that does not go through the proxy fails verification. So the confdir
gets a combined bundle (this machine's trusted roots plus the proxy CA) for those variables, and
the proxy CA alone only where a runtime adds it to its own roots (Node's NODE_EXTRA_CA_CERTS,
the system stores, Java's keytool).
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from pathlib import Path

from shadowgate.config.attribution import load_or_create_secret

CA_CERT_NAME = "mitmproxy-ca-cert.pem"
BUNDLE_NAME = "shadowgate-ca-bundle.pem"
# The name the proxy gives the key when shadowgate_fingerprint_key is empty (stages/settings.py).
FINGERPRINT_KEY_NAME = "shadowgate-fingerprint.key"
MITMPROXY_DEFAULT_PORT = 8080
# Where distributions keep their trusted roots as one PEM file, after OpenSSL's compiled default.
DISTRIBUTION_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL, CentOS
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, Alpine, FreeBSD
)
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")


def ensure_ca(confdir: Path) -> Path:
    """mitmproxy creates its CA on first start; create it now so we can say where it is."""
    from mitmproxy import certs

    certs.CertStore.from_store(confdir, "mitmproxy", 2048)
    return confdir / CA_CERT_NAME


def ensure_fingerprint_key(confdir: Path) -> Path:
    """The key instances sharing this confdir fingerprint API keys with (0600, as the proxy makes it)."""
    path = confdir / FINGERPRINT_KEY_NAME
    load_or_create_secret(path)
    return path


def system_roots_bundle() -> Path | None:
    """This machine's trusted roots as one PEM file: OpenSSL's compiled default, a distribution's
    bundle, or certifi's. Not $SSL_CERT_FILE, which may be our own bundle or the bare proxy CA."""
    paths = ssl.get_default_verify_paths()
    candidates = [paths.openssl_cafile, *DISTRIBUTION_BUNDLES]
    try:
        import certifi

        candidates.append(certifi.where())
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and pem_certificates(Path(candidate).read_bytes()):
            return Path(candidate)
    return None


def pem_certificates(data: bytes) -> list[bytes]:
    return [m.group(0) for m in _PEM_CERT.finditer(data)]


def write_ca_bundle(confdir: Path, ca_pem: Path, system_roots: Path | None) -> Path | None:
    """The system roots plus the proxy CA in <confdir>/shadowgate-ca-bundle.pem, rewritten on
    every start so updated roots arrive. None when this machine has no roots bundle."""
    if system_roots is None:
        return None
    seen: set[bytes] = set()
    certificates = []
    for cert in [*pem_certificates(system_roots.read_bytes()), *pem_certificates(ca_pem.read_bytes())]:
        body = b"".join(cert.split())
        if body not in seen:
            seen.add(body)
            certificates.append(cert)
    bundle = confdir / BUNDLE_NAME
    content = f"# {system_roots} plus the shadowgate proxy CA {ca_pem}\n".encode() + b"\n".join(certificates) + b"\n"
    try:
        # Written aside and renamed: a client reading it meanwhile never sees half a bundle.
        fd, tmp = tempfile.mkstemp(dir=confdir, prefix=".bundle-", suffix=".tmp")
    except OSError:
        # A read-only confdir (mounted so, with the CA made beforehand) must not stop the proxy.
        return bundle if bundle.is_file() else None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, bundle)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return bundle


def listen_address(mitmdump_args: list[str]) -> tuple[str, int]:
    """The host and port the forward proxy (regular or upstream mode) started with these arguments
    listens on: --listen-host/--listen-port, -p, --set, or a mode's @host:port."""
    from mitmproxy.proxy.mode_specs import ProxyMode
    from mitmproxy.proxy.mode_specs import RegularMode
    from mitmproxy.proxy.mode_specs import UpstreamMode

    host, port, forward_mode = "", MITMPROXY_DEFAULT_PORT, None
    for name, value in _option_pairs(mitmdump_args):
        if name == "listen_host":
            host = value
        elif name == "listen_port" and value.isdigit():
            port = int(value)
        elif name == "mode" and forward_mode is None:
            try:
                mode = ProxyMode.parse(value)
            except ValueError:
                continue  # mitmdump itself says what is wrong with the spec
            if isinstance(mode, (RegularMode, UpstreamMode)):
                forward_mode = mode
    if forward_mode is not None:
        return forward_mode.listen_host(host), forward_mode.listen_port(port) or port
    return host, port


def _option_pairs(args: list[str]):
    """(option name, value) for each option in mitmdump's argument forms, in order."""
    flags = {"--listen-host": "listen_host", "--listen-port": "listen_port", "-p": "listen_port",
             "--mode": "mode", "-m": "mode", "--proxyauth": "proxyauth"}  # fmt: skip
    for i, arg in enumerate(args):
        following = args[i + 1] if i + 1 < len(args) else ""
        if arg == "--set" and "=" in following:
            yield tuple(following.split("=", 1))
        elif arg.startswith("--set="):
            name, _, value = arg[len("--set=") :].partition("=")
            yield name, value
        elif arg in flags and following:
            yield flags[arg], following
        elif arg.split("=", 1)[0] in flags and "=" in arg:
            flag, value = arg.split("=", 1)
            yield flags[flag], value


def proxy_url(mitmdump_args: list[str]) -> str:
    """What clients put in HTTPS_PROXY for a proxy started with these arguments."""
    host, port = listen_address(mitmdump_args)
    if host in ("", "0.0.0.0", "::"):
        host = "<proxy-host>"  # every interface: the name clients reach this machine by
    elif ":" in host:
        host = f"[{host}]"
    auth = any(name == "proxyauth" and value for name, value in _option_pairs(mitmdump_args))
    # Port 0: the system picks one; mitmproxy's "listening at" line names it.
    shown_port = port or "<port-in-the-listening-line>"
    return f"http://{'<user>:<password>@' if auth else ''}{host}:{shown_port}"


def trust_instructions(ca_pem: Path, bundle: Path | None, proxy: str | None = None) -> str:
    """The banner: where the CA is, how each kind of client trusts it, where to point clients."""
    if bundle is not None:
        replacing = bundle
        note = f"""\
  {bundle.name} is this machine's trusted roots plus the proxy CA: a variable that REPLACES the
  roots must name it (or your own roots plus the CA), never the proxy CA alone, or every HTTPS call
  that does not pass the proxy fails verification."""
    else:
        replacing = Path("<your-roots-plus-ca.pem>")
        note = f"""\
  No trusted-roots bundle was found on this machine: concatenate your roots and {ca_pem} into one
  file for the variables that REPLACE the roots; never name the proxy CA alone there."""
    return f"""\
shadowgate: the proxy's CA certificate is {ca_pem}
  Clients must trust it to talk to AI hosts through the proxy. The system store covers most programs:
    macOS    sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {ca_pem}
    Debian   sudo cp {ca_pem} /usr/local/share/ca-certificates/shadowgate.crt && sudo update-ca-certificates
    Windows  certutil -addstore root {ca_pem.with_suffix(".cer")}
  Runtimes with roots of their own (copy the file to the client first):
    Python   export SSL_CERT_FILE={replacing} REQUESTS_CA_BUNDLE={replacing}
             (ssl, urllib, httpx and the OpenAI and Anthropic SDKs read the first; requests the second)
    Node     export NODE_EXTRA_CA_CERTS={ca_pem}   (added to Node's own roots: the CA alone)
    curl     export CURL_CA_BUNDLE={replacing}
    Java     keytool -importcert -noprompt -cacerts -storepass changeit -alias shadowgate -file {ca_pem}
{note}
  Then point clients at the proxy: export HTTPS_PROXY={proxy or "http://<proxy-host>:<listen-port>"}"""
