"""`shadowgate pac`: the generated file, run in a real JavaScript engine (Node.js), must route every
host exactly as the proxy's own matcher classifies it, look-alike hosts included."""

from __future__ import annotations

import argparse
import ipaddress
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shadowgate.config.catalog import HostIndex
from shadowgate.config.catalog import load_catalog
from shadowgate.config.catalog import normalise_host
from shadowgate.config.policy import load_policy
from shadowgate.pac import LOCAL_NETWORKS
from shadowgate.pac import LOCAL_SUFFIXES
from shadowgate.pac import add_arguments
from shadowgate.pac import build_pac
from shadowgate.pac import route
from shadowgate.pac import run_pac
from shadowgate.wireformats import PARSERS

# Runs a PAC file the way a browser's PAC sandbox does: a fresh global scope, FindProxyForURL(url,
# host) with the URL stripped to scheme and host (as Chrome does for https). The generated file
# calls no PAC helper; the DNS helpers throw here so that a DNS lookup per request would show,
# and any other helper is undefined (a ReferenceError) so that no helper use goes unnoticed.
HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
const [pacPath, hostsPath] = process.argv.slice(2);
const sandbox = {};
for (const name of ["dnsResolve", "dnsResolveEx", "isInNet", "isInNetEx", "isResolvable",
                    "isResolvableEx", "myIpAddress", "myIpAddressEx"]) {
  sandbox[name] = () => { throw new Error(`the PAC called ${name}: a DNS lookup per request`); };
}
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(pacPath, "utf8"), sandbox, {filename: pacPath});
const hosts = JSON.parse(fs.readFileSync(hostsPath, "utf8"));
const url = (h) => "https://" + (h.includes(":") && !h.startsWith("[") ? `[${h}]` : h) + "/";
const results = hosts.map((h) => sandbox.FindProxyForURL(url(h), h));
let calls = 0;
const start = process.hrtime.bigint();
for (let round = 0; round < 20; round++) {
  for (const h of hosts) { sandbox.FindProxyForURL(url(h), h); calls++; }
}
const nsPerCall = Number(process.hrtime.bigint() - start) / calls;
process.stdout.write(JSON.stringify({results, nsPerCall}));
"""

AI = "PROXY sg.corp.example:8080; PROXY sg2.corp.example:8080"
LOOK_ALIKES = [
    "api.openai.com.evil.example", "notopenai.com", "openai.com.example.org", "xapi.openai.com",
    "api-openai.com", "openai.com", "api.openai.co", "anthropic.com.evil.example", "evilanthropic.com",
    "openai.azure.com.attacker.net", "xopenai.azure.com", "com", "", ".", "..", ".openai.com",
    "API.OPENAI.COM", "Api.OpenAI.Com.", "api.openai.com..", "[api.openai.com]",
    "1.2.3.4", "127.0.0.1", "10.1.2.3", "::1", "[::1]", "2001:db8::1", "[2001:db8::1]", "fe80::1",
    "localhost", "printer", "__proto__", "constructor", "tostring", "hasownproperty", "valueOf",
    "__proto__.openai.com", "intranet.local", "a.b.c.d.e.f.g.h.example.org",
]  # fmt: skip


def main(argv: list[str]) -> int:
    """`shadowgate pac ARGS` (cli.py hands the subcommand's arguments to these two functions)."""
    assert argv[0] == "pac"
    parser = argparse.ArgumentParser(prog="shadowgate pac")
    add_arguments(parser)
    return run_pac(parser.parse_args(argv[1:]))


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail(
            "Node.js (`node`) is required: the PAC file is checked in a real JavaScript engine. "
            "Install it (Debian: apt-get install nodejs) and run the tests again."
        )
    return found


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(known_parsers=PARSERS)


def evaluate(node: str, tmp_path: Path, pac: str, hosts: list[str]) -> tuple[dict[str, str], float]:
    """FindProxyForURL for every host, run by Node.js; also the mean time per call in ns."""
    (tmp_path / "harness.js").write_text(HARNESS)
    (tmp_path / "proxy.pac").write_text(pac)
    (tmp_path / "hosts.json").write_text(json.dumps(hosts))
    done = subprocess.run(
        [node, tmp_path / "harness.js", tmp_path / "proxy.pac", tmp_path / "hosts.json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, f"node failed:\n{done.stderr}"
    out = json.loads(done.stdout)
    return dict(zip(hosts, out["results"], strict=True)), out["nsPerCall"]


def hosts_for(patterns: list[str]) -> list[str]:
    """Each pattern's own names, its subdomains, look-alikes around it, in odd spellings."""
    hosts = list(LOOK_ALIKES)
    for pattern in patterns:
        bare = pattern.removeprefix("*.")
        parent = bare.split(".", 1)[1] if "." in bare else bare
        hosts += [
            bare, f"a.{bare}", f"a.b.{bare}", f"x{bare}", f"not{parent}", f"{bare}.evil.example",
            f"{bare}.", bare.upper(), f"A.{bare.upper()}.", f"{bare}-x.{parent}", parent,
        ]  # fmt: skip
    return list(dict.fromkeys(hosts))


def disagreements(results: dict[str, str], expected: dict[str, str]) -> list[str]:
    return [f"{h!r}: PAC {results[h]!r}, Python {want!r}" for h, want in expected.items() if results[h] != want]


def test_pac_routes_every_host_as_the_catalog_matcher_does(node, catalog, tmp_path):
    patterns = catalog.host_patterns()
    assert len(patterns) > 400
    pac = build_pac(patterns, ai_route=AI)
    hosts = hosts_for(patterns)
    results, ns_per_call = evaluate(node, tmp_path, pac, hosts)
    # A host with an AI feature on some paths only (embedded-saas) goes to the proxy too: only there can
    # the path be seen; match_host alone says no for it, by design.
    scoped = HostIndex((p, True) for p in catalog.path_scoped_hosts())
    assert scoped.get("acme.snowflakecomputing.com") and not catalog.match_host("acme.snowflakecomputing.com")
    expected = {h: AI if catalog.match_host(h) or scoped.get(h) else "DIRECT" for h in hosts}
    assert disagreements(results, expected) == []
    # Agreement alone could hide a bug both share: pin the facts the catalog promises.
    for pattern in patterns:
        bare = pattern.removeprefix("*.")
        if pattern.startswith("*."):
            assert results[f"a.{bare}"] == results[f"A.{bare.upper()}."] == AI, pattern
        else:
            assert results[bare] == results[f"{bare}."] == results[bare.upper()] == AI, pattern
        assert results[f"{bare}.evil.example"] == "DIRECT", pattern
    for host in ("api.openai.com.evil.example", "notopenai.com", "openai.com.example.org", "xapi.openai.com",
                 "1.2.3.4", "::1", "__proto__", "constructor", "__proto__.openai.com"):  # fmt: skip
        assert results[host] == "DIRECT", host
    for host in ("API.OPENAI.COM", "Api.OpenAI.Com.", "api.openai.com..", "[api.openai.com]"):
        assert results[host] == AI, host
    assert sum(r == AI for r in results.values()) > 1000
    # ~470 patterns cost a few dict probes per call, not a scan: well under 20 µs even on a busy CI box.
    assert ns_per_call < 20_000, f"{ns_per_call:.0f} ns per FindProxyForURL call"


def test_pac_with_policy_hosts_and_corporate_proxy(node, catalog, tmp_path, capsys):
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        "inspect: ['*.ml.internal.example', gpu-box.lab.example]\n"
        "rules:\n"
        "  - id: corp-gateway\n"
        "    match: {host: llm.corp.example}\n"
        "    action: allow\n"
        "  - id: tenant\n"
        "    match: {host: [login.microsoftonline.com, '*.githubcopilot.com']}\n"
        "    action: allow\n"
        "budgets:\n"
        "  - id: lab\n"
        "    per: user\n"
        "    match: {host: '*.lab2.example'}\n"
        "    tokens_per_day: 1000\n"
    )
    out = tmp_path / "out.pac"
    rc = main([
        "pac", "--policy", str(policy_file), "--proxy", "sg.corp.example:8080", "--proxy", "HTTPS sg2.corp.example:443",
        "--corporate-proxy", "corp.example:3128", "--corporate-proxy", "corp2.example:3128", "--fail-open",
        "--out", str(out),
    ])  # fmt: skip
    assert rc == 0 and capsys.readouterr().out == ""
    pac = out.read_text()
    ai = "PROXY sg.corp.example:8080; HTTPS sg2.corp.example:443; PROXY corp.example:3128; PROXY corp2.example:3128"
    other = "PROXY corp.example:3128; PROXY corp2.example:3128"
    policy = load_policy(policy_file)

    scoped = HostIndex((p, True) for p in catalog.path_scoped_hosts())  # AI on some paths: the proxy must see them

    def shadowgate_bound(host: str) -> bool:
        named = (r.match.hosts for r in (*policy.rules, *policy.budgets) if r.match.hosts is not None)
        return bool(
            catalog.match_host(host) or scoped.get(host) or policy.inspect.get(host) or any(h.get(host) for h in named)
        )

    extra = ["*.ml.internal.example", "gpu-box.lab.example", "llm.corp.example", "login.microsoftonline.com",
             "*.lab2.example", "ml.internal.example", "lab2.example"]  # fmt: skip
    hosts = hosts_for([*catalog.host_patterns(), *extra]) + ["GPU-BOX.lab.example.", "x.lab2.example", "example.org"]
    results, _ = evaluate(node, tmp_path, pac, hosts)
    expected = {h: ai if shadowgate_bound(h) else other for h in hosts}
    assert disagreements(results, expected) == []
    for host in ("a.ml.internal.example", "GPU-BOX.lab.example.", "llm.corp.example", "x.lab2.example"):
        assert results[host] == ai, host
    for host in ("ml.internal.example", "lab2.example", "xllm.corp.example", "example.org"):
        assert results[host] == other, host


def _is_local(host: str) -> bool:
    """What --discovery leaves alone, from LOCAL_NETWORKS and LOCAL_SUFFIXES (the JS spells it out)."""
    host = normalise_host(host) if host.count(":") <= 1 else host.strip("[]").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host or host.rsplit(".", 1)[-1] in LOCAL_SUFFIXES
    return any(address in ipaddress.ip_network(n) for n in LOCAL_NETWORKS)


def test_pac_discovery_sends_unknown_hosts_to_shadowgate(node, catalog, tmp_path, capsys):
    rc = main(["pac", "--discovery", "--bypass", "*.corp.example", "--bypass", "wiki.example.org"])
    assert rc == 0
    pac = capsys.readouterr().out
    assert pac.startswith("// Proxy auto-config generated by `shadowgate pac`")
    addresses = ["8.8.8.8", "10.0.0.1", "172.15.0.1", "172.16.0.1", "172.31.255.255", "172.32.0.1",
                 "192.168.1.1", "192.169.0.1", "169.254.1.1", "127.0.0.2", "100.64.0.1", "256.1.1.1",
                 "2001:db8::1", "::1", "fc00::1", "fd12:3456::1", "fe80::1", "febf::1", "fec0::1",
                 "[fd00::1]", "[2606:4700::1111]"]  # fmt: skip
    names = ["example.org", "chat.unknown-ai.example", "corp.example", "git.corp.example", "wiki.example.org",
             "x.wiki.example.org", "printer", "box.local", "dev.localhost", "localhost.example.org"]  # fmt: skip
    hosts = hosts_for(catalog.host_patterns()[:50]) + addresses + names
    results, _ = evaluate(node, tmp_path, pac, hosts)

    def bypassed(host: str) -> bool:
        h = normalise_host(host)
        return h == "wiki.example.org" or h.endswith(".corp.example")

    expected = {
        h: "PROXY 127.0.0.1:8080" if catalog.match_host(h) or not (_is_local(h) or bypassed(h)) else "DIRECT"
        for h in hosts
    }
    assert disagreements(results, expected) == []
    for host in ("8.8.8.8", "chat.unknown-ai.example", "corp.example", "x.wiki.example.org", "2001:db8::1"):
        assert results[host] == "PROXY 127.0.0.1:8080", host
    for host in ("10.0.0.1", "printer", "box.local", "git.corp.example", "wiki.example.org", "fe80::1", "[fd00::1]"):
        assert results[host] == "DIRECT", host


def test_pac_is_plain_es3_without_helpers():
    pac = build_pac(["api.openai.com", "*.openai.azure.com"], ai_route="PROXY a:1")
    code = "\n".join(line for line in pac.splitlines() if not line.startswith("//"))
    for modern in ("let ", "const ", "=>", "`", "includes(", "startsWith(", "endsWith("):
        assert modern not in code, modern  # WinHTTP's PAC engine is ES3
    for helper in ("dnsDomainIs", "shExpMatch", "isInNet", "dnsResolve", "isPlainHostName", "localHostOrDomainIs"):
        assert helper not in code, helper


def test_route_and_bad_arguments(capsys):
    expected = "PROXY a:8080; HTTPS b.example:443; SOCKS5 [::1]:1080"
    assert route(["a:8080", "HTTPS b.example:443", "socks5 [::1]:1080"]) == expected
    for bad in ("a", "a:0", "a:70000", 'a:1"; alert(1)', "a:1; DIRECT", "FTP a:1", "http://a:1"):
        with pytest.raises(ValueError):
            route([bad])
    assert main(["pac", "--proxy", "nope"]) == 2
    assert "is not HOST:PORT" in capsys.readouterr().err
    assert main(["pac", "--bypass", "x.example"]) == 2
    assert "--discovery" in capsys.readouterr().err
    assert main(["pac", "--discovery", "--bypass", "*.com"]) == 2
    assert "public suffix" in capsys.readouterr().err


def test_shadowgate_pac_command(tmp_path):
    """The installed console script, as an admin runs it."""
    shadowgate = Path(sys.executable).parent / "shadowgate"
    out = tmp_path / "proxy.pac"
    done = subprocess.run(
        [str(shadowgate), "pac", "--proxy", "sg.corp.example:8080", "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert 'var SG_AI = "PROXY sg.corp.example:8080";' in out.read_text()
    assert '".api.openai.com": 1' in out.read_text()
