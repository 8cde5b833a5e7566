"""`shadowgate pac`: a proxy auto-config file from the catalog and the policy.

AI hosts (every catalog host pattern, the policy's `inspect` hosts and the hosts its rules and
budgets name) go to shadowgate; everything else goes DIRECT or to the existing corporate proxy.
With --discovery, unknown hosts go to shadowgate too, except local names and addresses and the
--bypass patterns.

The generated JavaScript matches hosts exactly as shadowgate.config.catalog.HostIndex does: "x" matches only
x, "*.x" only names below x (never x itself, never "notx" or "x.evil.example"). It calls none of
the PAC helper functions (dnsDomainIs("notopenai.com", "openai.com") is true in real engines, and
the DNS helpers block the browser), uses only ES3 (WinHTTP's engine), and costs one object lookup
plus one per parent domain, whatever the number of patterns.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from shadowgate.cli.catalog_options import add_catalog_arguments
from shadowgate.cli.catalog_options import catalog_from_arguments
from shadowgate.config.catalog import check_host_pattern
from shadowgate.config.policy import Policy
from shadowgate.config.policy import load_policy
from shadowgate.config.yamlfile import ConfigError

DEFAULT_PROXY = "127.0.0.1:8080"
_PROXY_TYPES = ("PROXY", "HTTPS", "SOCKS", "SOCKS4", "SOCKS5")
_HOST_PORT = re.compile(r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})")

# Local names and addresses that --discovery leaves alone (the proxy cannot reach a user's LAN).
# The same list is spelled out in the JavaScript below; tests/test_pac.py checks they agree.
LOCAL_NETWORKS = (
    "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
    "::1/128", "fc00::/7", "fe80::/10",
)  # fmt: skip
LOCAL_SUFFIXES = ("localhost", "local")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--proxy", action="append", metavar="HOST:PORT",
        help=f"shadowgate's address as clients reach it (default {DEFAULT_PROXY}); repeat for "
        "fallbacks, tried in order. 'HTTPS host:port' or 'SOCKS5 host:port' for other proxy types",
    )  # fmt: skip
    parser.add_argument(
        "--corporate-proxy", action="append", metavar="HOST:PORT",
        help="where every other host goes (default DIRECT); repeat for fallbacks",
    )  # fmt: skip
    parser.add_argument(
        "--discovery", action="store_true",
        help="send unknown hosts to shadowgate too, except local names and addresses and --bypass",
    )  # fmt: skip
    parser.add_argument(
        "--bypass", action="append", default=[], metavar="HOST",
        help="with --discovery: a host or '*.domain' that never goes to shadowgate unless it is an AI host",
    )  # fmt: skip
    parser.add_argument(
        "--fail-open", action="store_true",
        help="when every shadowgate proxy is down, let AI hosts go the way other hosts go "
        "(default: fail closed, the browser shows an error)",
    )  # fmt: skip
    parser.add_argument("--policy", help="the policy file: its inspect hosts and rule hosts go to shadowgate too")
    add_catalog_arguments(parser, "the catalog: its hosts, an overlay's included, go to shadowgate")
    parser.add_argument("--out", "-o", help="write the PAC file here (default: stdout)")


def run_pac(args: argparse.Namespace) -> int:
    try:
        catalog = catalog_from_arguments(args)
        policy = load_policy(args.policy) if args.policy else Policy()
        ai_route = route(args.proxy or [DEFAULT_PROXY])
        other_route = route(args.corporate_proxy) if args.corporate_proxy else "DIRECT"
        bypass = [check_host_pattern(h) for h in args.bypass]
    except (ConfigError, ValueError) as e:
        print(f"shadowgate: {e}", file=sys.stderr)
        return 2
    if args.bypass and not args.discovery:
        print("shadowgate: --bypass only matters with --discovery", file=sys.stderr)
        return 2
    text = build_pac(
        shadowgate_hosts(catalog.host_patterns(), policy),
        ai_route=f"{ai_route}; {other_route}" if args.fail_open else ai_route,
        other_route=other_route,
        discovery=args.discovery,
        bypass=bypass,
        sources=[catalog.source, *([args.policy] if args.policy else [])],
    )
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def shadowgate_hosts(catalog_patterns: Iterable[str], policy: Policy) -> list[str]:
    """Every host pattern whose traffic must reach shadowgate: catalogued, inspected or named."""
    patterns = set(catalog_patterns) | set(policy.inspect.patterns())
    for match in (*(r.match for r in policy.rules), *(b.match for b in policy.budgets)):
        if match.hosts is not None:
            patterns.update(match.hosts.patterns())
    return sorted(patterns)


def route(proxies: Iterable[str]) -> str:
    """'a:8080', 'HTTPS b:443' -> 'PROXY a:8080; HTTPS b:443'. Raises ValueError on anything else."""
    parts = []
    for value in proxies:
        kind, _, address = value.strip().rpartition(" ")
        kind = kind.strip().upper() or "PROXY"
        m = _HOST_PORT.fullmatch(address)
        if kind not in _PROXY_TYPES or m is None or not 0 < int(m["port"]) < 65536:
            raise ValueError(f"{value!r} is not HOST:PORT (optionally after one of {', '.join(_PROXY_TYPES)})")
        parts.append(f"{kind} {address}")
    return "; ".join(parts)


def build_pac(
    patterns: Iterable[str],
    ai_route: str,
    other_route: str = "DIRECT",
    discovery: bool = False,
    bypass: Iterable[str] = (),
    sources: Iterable[str] = (),
) -> str:
    patterns = sorted(set(patterns))
    exact, below = _tables(patterns)
    bypass_exact, bypass_below = _tables(bypass)
    header = "\n".join(f"//   {s}" for s in sources)
    return f"""\
// Proxy auto-config generated by `shadowgate pac`; regenerate it, do not edit it.
// {len(patterns)} host patterns from:
{header}
// Hosts match exactly as the proxy matches them: "x" only x, "*.x" only names below x.
var SG_AI = {json.dumps(ai_route)};
var SG_OTHER = {json.dumps(other_route)};
var SG_DISCOVERY = {"true" if discovery else "false"};
// Keys carry a leading "." so that no host can collide with an Object property (__proto__).
var SG_EXACT = {exact};
var SG_BELOW = {below};
var SG_BYPASS_EXACT = {bypass_exact};
var SG_BYPASS_BELOW = {bypass_below};

function sgHas(table, key) {{
  return Object.prototype.hasOwnProperty.call(table, "." + key);
}}

function sgMatch(host, exact, below) {{
  if (sgHas(exact, host)) return true;
  for (var dot = host.indexOf("."); dot !== -1; dot = host.indexOf(".", dot + 1)) {{
    if (sgHas(below, host.substring(dot + 1))) return true;
  }}
  return false;
}}

function sgIsLocal(host) {{
  if (host.indexOf(":") !== -1) {{
    return host === "::1" || /^f[cd][0-9a-f]{{2}}:/.test(host) || /^fe[89ab][0-9a-f]:/.test(host);
  }}
  if (host.indexOf(".") === -1 || host === "localhost") return true;
  if (/\\.(localhost|local)$/.test(host)) return true;
  var ip = /^(\\d{{1,3}})\\.(\\d{{1,3}})\\.(\\d{{1,3}})\\.(\\d{{1,3}})$/.exec(host);
  if (!ip || +ip[1] > 255 || +ip[2] > 255 || +ip[3] > 255 || +ip[4] > 255) return false;
  var a = +ip[1], b = +ip[2];
  return a === 10 || a === 127 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168);
}}

function FindProxyForURL(url, host) {{
  var h = String(host).toLowerCase();
  if (h.charAt(0) === "[" && h.charAt(h.length - 1) === "]") h = h.substring(1, h.length - 1);
  while (h.charAt(h.length - 1) === ".") h = h.substring(0, h.length - 1);
  if (sgMatch(h, SG_EXACT, SG_BELOW)) return SG_AI;
  if (SG_DISCOVERY && !sgIsLocal(h) && !sgMatch(h, SG_BYPASS_EXACT, SG_BYPASS_BELOW)) return SG_AI;
  return SG_OTHER;
}}
"""


def _tables(patterns: Iterable[str]) -> tuple[str, str]:
    """Two JavaScript object literals: exact names and the domains whose subdomains match."""
    exact = sorted(p for p in set(patterns) if not p.startswith("*."))
    below = sorted(p[2:] for p in set(patterns) if p.startswith("*."))
    return _object(exact), _object(below)


def _object(keys: list[str]) -> str:
    if not keys:
        return "{}"
    return "{\n" + ",\n".join(f"  {json.dumps('.' + k)}: 1" for k in keys) + "\n}"
