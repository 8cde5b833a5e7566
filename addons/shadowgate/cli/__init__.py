"""The shadowgate command: a thin wrapper around mitmdump plus the admin tools.

shadowgate proxy [mitmdump options...]   run the proxy with every addon loaded
shadowgate demo                          the whole picture in under a minute, on this machine
shadowgate catalog match HOST [PATH]     which AI service a host (and path) belongs to; '-' reads stdin
shadowgate catalog list|show ID|stats|validate [FILE]|hosts|diff OLD NEW|candidates   the catalog (--extra OVERLAY)
shadowgate policy check FILE             validate a policy file
shadowgate policy explain --host H ...   which rule a request meets, and why
shadowgate usage [--db FILE]             the usage table: who uses what, tokens and cost
shadowgate report [--week W] [--format F]  the weekly shadow-AI report
shadowgate serve [--db FILE]             the read-only web console (add an account: --passwd NAME)
shadowgate pac [--proxy HOST:PORT]       a PAC file that sends AI hosts to shadowgate
shadowgate scan FILE|-                   the DLP detectors on any text: one JSON finding per line
shadowgate webapps check FILE.har        a browser capture through the chat-app classification
shadowgate ca [--confdir DIR]            prepare a config directory (CA, trust bundle, fingerprint key)
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from shadowgate import __version__
from shadowgate.cli.argtypes import positive_int
from shadowgate.options import DEFAULT_DB

DEFAULT_CONFDIR = "~/.mitmproxy"


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `shadowgate ca | head`: the reader left. Point stdout at /dev/null so the interpreter's
        # final flush does not raise again, and exit as a killed-by-SIGPIPE tool would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "proxy":
        return run_proxy(argv[1:])
    args = build_parser().parse_args(argv)
    return _run(args)


def build_parser() -> argparse.ArgumentParser:
    """Every command and its options (`shadowgate --help`; docs/install.md lists the same commands)."""
    parser = argparse.ArgumentParser(
        prog="shadowgate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"shadowgate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("proxy", help="run the proxy (every other argument goes to mitmdump)")
    demo = sub.add_parser("demo", help="start a proxy and fake providers, send SDK traffic, print the table")
    demo.add_argument("--keep", action="store_true", help="leave the demo's data directory behind")
    catalog = sub.add_parser("catalog", help="query, list, validate and compare the catalog")
    from shadowgate.cli.catalog import add_arguments as add_catalog_command_arguments

    add_catalog_command_arguments(catalog)
    usage = sub.add_parser("usage", help="print the usage table from the database")
    usage.add_argument("--db", default=DEFAULT_DB)
    usage.add_argument("--days", type=positive_int, default=7, help="how many days back, today included")
    from shadowgate.cli.catalog_options import add_catalog_arguments

    policy = sub.add_parser("policy", help="check a policy file, or explain which rule a request meets")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_sub.add_parser("check", help="validate a policy file")
    check.add_argument("file")
    check.add_argument(
        "--strict", action="store_true", help="exit 1 on warnings too (a shadowed rule, an unset gateway key)"
    )
    check.add_argument("--users", metavar="FILE", help="also check the attribution map (shadowgate_users)")
    add_catalog_arguments(check, "the catalog the ids are checked against")
    explain = policy_sub.add_parser("explain", help="which rule matches a request, and why")
    explain.add_argument("--policy", help="the policy file (default: none, observe everything)")
    add_catalog_arguments(explain)
    explain.add_argument("--host", required=True)
    explain.add_argument("--path", default="/")
    explain.add_argument("--method", default="POST")
    explain.add_argument("--user")
    explain.add_argument("--group")
    explain.add_argument("--model")
    explain.add_argument("--client", help="client IP address")
    explain.add_argument(
        "--users",
        metavar="FILE",
        help="the attribution map (shadowgate_users): the user and group of --user or --client",
    )
    report = sub.add_parser("report", help="the weekly shadow-AI report (terminal, Markdown, HTML, CSV, JSON)")
    from shadowgate.report.weekly import add_arguments as add_report_arguments

    add_report_arguments(report)
    serve = sub.add_parser("serve", help="the read-only web console (add an account with --passwd NAME)")
    from shadowgate.cli.serve import add_arguments as add_serve_arguments

    add_serve_arguments(serve)
    pac = sub.add_parser("pac", help="a proxy auto-config file that sends AI hosts to shadowgate")
    from shadowgate.pac import add_arguments as add_pac_arguments

    add_pac_arguments(pac)
    scan = sub.add_parser("scan", help="run the DLP detectors on a file or stdin; one JSON finding per line")
    scan.add_argument("file", nargs="?", help="a file, or '-' for stdin")
    scan.add_argument("--types", action="store_true", help="list every finding type and its kind, then exit")
    webapps = sub.add_parser("webapps", help="check a browser capture (HAR) against the chat-app endpoints")
    from shadowgate.cli.webapps import add_arguments as add_webapps_arguments

    add_webapps_arguments(webapps)
    ca = sub.add_parser(
        "ca", help="prepare a config directory: the CA, a trust bundle, the fingerprint key; how to trust the CA"
    )
    ca.add_argument("--confdir", default=DEFAULT_CONFDIR, help="the proxy's confdir (default: %(default)s)")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "catalog":
        from shadowgate.cli.catalog import run as run_catalog

        return run_catalog(args)
    if args.command == "policy":
        from shadowgate.cli import policy as policycli

        if args.policy_command == "check":
            return policycli.run_check(args.file, args.providers, args.extra, args.strict, args.users)
        return policycli.run_explain(
            args.policy,
            args.providers,
            args.extra,
            args.host,
            args.path,
            args.method,
            args.user,
            args.group,
            args.model,
            args.client,
            args.users,
        )
    if args.command == "report":
        from shadowgate.report.weekly import run_report

        return run_report(args)
    if args.command == "serve":
        from shadowgate.cli.serve import run as run_serve

        return run_serve(args)
    if args.command == "pac":
        from shadowgate.pac import run_pac

        return run_pac(args)
    if args.command == "scan":
        from shadowgate.cli.scan import list_types
        from shadowgate.cli.scan import run_scan

        return list_types() if args.types else run_scan(args.file)
    if args.command == "webapps":
        from shadowgate.cli.webapps import run as run_webapps

        return run_webapps(args)
    if args.command == "usage":
        from shadowgate.report.usage import print_usage

        return print_usage(Path(args.db).expanduser(), days=args.days)
    if args.command == "ca":
        return run_ca(Path(args.confdir).expanduser())
    if args.command == "demo":
        from shadowgate.demo.run import run_demo

        return run_demo(keep=args.keep)
    return 2


def run_proxy(mitmdump_args: list[str]) -> int:
    """mitmdump with every shadowgate addon registered before the options are read, so that a
    broken policy or a mistyped option stops start-up with one line and before the proxy listens
    (an -s script loads only after the servers are up)."""
    from mitmproxy.tools import cmdline
    from mitmproxy.tools.dump import DumpMaster
    from mitmproxy.tools.main import run

    from shadowgate.stages import default_addons

    class ShadowgateMaster(DumpMaster):
        def __init__(self, options, **kwargs) -> None:
            super().__init__(options, **kwargs)
            self.addons.add(*default_addons(), TrustBanner(banner))

    from shadowgate.cli import ca

    confdir = Path(_option_value(mitmdump_args, "confdir") or DEFAULT_CONFDIR).expanduser()
    args = ["--set", "connection_strategy=lazy", *mitmdump_args]
    if _option_value(mitmdump_args, "flow_detail") is None and "--flow-detail" not in mitmdump_args:
        # mitmdump's per-request lines print each URL with its query string, which DLP never
        # redacts (a blocked token's first characters would reach the terminal and the journal).
        args = ["--set", "flow_detail=0", *args]
    if _option_value(mitmdump_args, "shadowgate_db") is None:
        # The addons are registered before the options are set, so mitmproxy announces only the
        # options on the command line: without this, the default database is never opened.
        args = ["--set", f"shadowgate_db={DEFAULT_DB}", *args]
    if "--listen-host" not in mitmdump_args and _option_value(mitmdump_args, "listen_host") is None:
        # A proxy that decrypts everyone's AI traffic serves a network only when told to.
        print(
            "shadowgate: will listen on 127.0.0.1 only; pass --listen-host 0.0.0.0 to serve other machines",
            file=sys.stderr,
        )
        args = ["--listen-host", "127.0.0.1", *args]
    ca_pem = ca.ensure_ca(confdir)
    bundle = ca.write_ca_bundle(confdir, ca_pem, ca.system_roots_bundle())
    banner = ca.trust_instructions(ca_pem, bundle, ca.proxy_url(args))
    try:
        master = run(ShadowgateMaster, cmdline.mitmdump, args)
    except TypeError as e:
        if (message := _config_type_error(str(e), confdir)) is None:
            raise
        print(message, file=sys.stderr)
        return 1
    errorcheck = master.addons.get("errorcheck") if master else None
    return 1 if errorcheck is not None and errorcheck.logger.has_errored else 0


class TrustBanner:
    """Prints how clients trust the CA and reach the proxy once it listens (mitmproxy's running
    hook comes after the servers are up): a start-up error is then the last thing printed, not
    followed by advice for a proxy that never started."""

    def __init__(self, text: str) -> None:
        self.text = text

    def running(self) -> None:
        print(self.text, file=sys.stderr)


# mitmproxy checks a value from config.yaml against its option's type with a TypeError that its
# command line does not catch (a --set value is parsed from text, so it never gets there).
_OPTION_TYPE_ERROR = re.compile(
    r"Expected (?P<expected>.+) for (?P<option>[\w.\[\]]+), but got <class '(?P<got>\w+)'>\."
)
_TYPE_WORDS = {
    "collections.abc.Sequence[str]": "a list of strings (a YAML list: [a, b])",
    "<class 'int'>": "an int",
    "<class 'float'>": "a number",
    "<class 'bool'>": "a bool (true or false)",
    "<class 'str'>": "a str",
    "typing.Optional[str]": "a str",
    "str | None": "a str",
}


def _config_type_error(error: str, confdir: Path) -> str | None:
    """One line naming config.yaml, the option and the type it takes, for mitmproxy's TypeError."""
    m = _OPTION_TYPE_ERROR.fullmatch(error)
    if m is None:
        return None
    files = [p for p in (confdir / "config.yaml", confdir / "config.yml") if p.is_file()]
    where = str(files[-1]) if files else f"{confdir}/config.yaml"
    expected = _TYPE_WORDS.get(m["expected"], m["expected"])
    return f"shadowgate: {where}: {m['option']}: {expected}, not a {m['got']}"


def _option_value(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        value = None
        if arg == "--set" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--set="):
            value = arg[len("--set=") :]
        if value and value.startswith(f"{name}="):
            return value.split("=", 1)[1]
    return None


def run_ca(confdir: Path) -> int:
    """Prepare a config directory instances can share: the CA, the trust bundle, the fingerprint key."""
    from shadowgate.cli import ca

    ca_pem = ca.ensure_ca(confdir)
    bundle = ca.write_ca_bundle(confdir, ca_pem, ca.system_roots_bundle())
    key = ca.ensure_fingerprint_key(confdir)
    print(ca.trust_instructions(ca_pem, bundle))
    print(f"shadowgate: the API key fingerprint key is {key}; instances that share it (the same --set confdir)\n"
          "  produce the same fingerprints. Keep it secret: it is mode 0600.")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
