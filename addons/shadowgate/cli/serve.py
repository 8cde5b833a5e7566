"""`shadowgate serve`: the read-only web console over the report's data and SQL (issue 20).

    shadowgate serve --passwd alice                # add an account (or change its password), then exit
    shadowgate serve                               # http://127.0.0.1:8765, the accounts in ~/.shadowgate/console.passwd
    shadowgate serve --db /var/lib/shadowgate/shadowgate.duckdb --policy policy.yaml
    shadowgate serve --host 0.0.0.0 --certfile cert.pem --keyfile key.pem   # other machines: over TLS

The console reads the database read-only (the segments while the proxy holds the file), exactly
as `shadowgate report` does; docs/console.md has the pages and the security model.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import shlex
import sys
from pathlib import Path

from shadowgate.cli.argtypes import positive_int
from shadowgate.cli.catalog_options import add_catalog_arguments

DEFAULT_PASSWORDS = "~/.shadowgate/console.passwd"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default="~/.shadowgate/shadowgate.duckdb", help="the database file (or its .segments directory)"
    )
    parser.add_argument("--policy", help="the policy file, for which apps are sanctioned")
    add_catalog_arguments(parser, "the provider catalog, for names and notes")
    parser.add_argument("--top", type=positive_int, default=50, help="rows in the top-N tables (default 50)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--passwords", default=DEFAULT_PASSWORDS, help=f"the password file (default {DEFAULT_PASSWORDS})"
    )
    parser.add_argument("--certfile", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--keyfile", help="the certificate's private key (PEM)")
    parser.add_argument(
        "--cache-seconds", type=float, default=30.0, help="reuse a page's numbers this long (default 30)"
    )
    parser.add_argument(
        "--passwd", metavar="NAME", help="add the account NAME to the password file (or change its password) and exit"
    )
    parser.add_argument(
        "--password-stdin", action="store_true", help="with --passwd: read the password from stdin, not a prompt"
    )


def run(args: argparse.Namespace) -> int:
    passwords = Path(args.passwords).expanduser()
    if args.passwd:
        return run_passwd(passwords, args.passwd, args.password_stdin)
    from shadowgate.console.auth import read_passwords

    if not passwords.is_file() or not read_passwords(passwords):
        # No account, no console: it never starts open. The hint names the same file, else
        # following it would add the account where this console does not look.
        option = "" if args.passwords == DEFAULT_PASSWORDS else f" --passwords {shlex.quote(args.passwords)}"
        print(
            f"shadowgate serve: no accounts in {passwords}; add one with: shadowgate serve{option} --passwd NAME",
            file=sys.stderr,
        )
        return 2
    if bool(args.certfile) != bool(args.keyfile):
        print("shadowgate serve: --certfile and --keyfile go together", file=sys.stderr)
        return 2
    if not _loopback(args.host) and not args.certfile:
        print(
            f"shadowgate serve: listening on {args.host} without TLS: passwords and pages cross the network "
            "in clear; pass --certfile and --keyfile",
            file=sys.stderr,
        )
    try:
        app = build_app(args, passwords)
    except (ValueError, FileNotFoundError) as e:
        print(f"shadowgate serve: {e}", file=sys.stderr)
        return 2
    import uvicorn

    scheme = "https" if args.certfile else "http"
    print(f"shadowgate serve: {scheme}://{args.host}:{args.port}/ (data {args.db})", file=sys.stderr)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
        server_header=False,
    )
    return 0


def build_app(args: argparse.Namespace, passwords: Path):
    from shadowgate.console.app import make_app
    from shadowgate.console.auth import Authenticator
    from shadowgate.console.data import ReportCache
    from shadowgate.console.data import load_sources

    sources = load_sources(args.db, args.policy, args.providers, args.top, args.extra)
    _warn_without_data(sources.db)
    return make_app(ReportCache(sources, args.cache_seconds), Authenticator(passwords))


def _warn_without_data(db: Path) -> None:
    """The console starts without data (it may be started before the proxy ever ran) and each page
    says why it is empty; say it here too, where a mistyped --db is noticed first."""
    from shadowgate.report.data import open_data

    try:
        con, _ = open_data(db)
    except FileNotFoundError:
        print(
            f"shadowgate serve: no shadowgate data at {db} yet (start the proxy first, or pass --db); "
            "the pages say so until it appears",
            file=sys.stderr,
        )
        return
    con.close()


def run_passwd(passwords: Path, name: str, from_stdin: bool) -> int:
    from shadowgate.console.auth import set_password

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            print("shadowgate serve: the passwords differ", file=sys.stderr)
            return 2
    try:
        set_password(passwords, name, password)
    except ValueError as e:
        print(f"shadowgate serve: {e}", file=sys.stderr)
        return 2
    print(f"shadowgate serve: {name} can log in ({passwords})", file=sys.stderr)
    return 0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":  # python -m shadowgate.cli.serve: the same as `shadowgate serve`
    parser = argparse.ArgumentParser(
        prog="shadowgate serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
