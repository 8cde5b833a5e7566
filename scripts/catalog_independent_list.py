"""Freeze an independent list of AI hosts from v2fly/domain-list-community, for catalog coverage.

The list is community-maintained (used by V2Ray/Xray routing rules to send AI traffic through
particular outbounds) and written without any reference to shadowgate, so it measures the catalog
rather than echoing it. Its files: category-ai-!cn, category-ai-cn, category-ai-ru, with their
"include:" lines resolved. A plain line "x.com" means x.com and its subdomains: the host tested
is x.com itself. "full:h" is the exact host h. "keyword:" and "regexp:" lines name no host and are
skipped, as are lines tagged with an attribute (e.g. "@ads").

    uv run python scripts/catalog_independent_list.py GIT_DIR > tests/fixtures/catalog/independent_ai_hosts.txt

GIT_DIR is a clone of https://github.com/v2fly/domain-list-community (a bare repository works).
"""

from __future__ import annotations

import subprocess
import sys

ROOTS = ("category-ai-!cn", "category-ai-cn", "category-ai-ru")


def read(git_dir: str, name: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"HEAD:data/{name}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def hosts_of(git_dir: str, name: str, seen: set[str]) -> dict[str, str]:
    """host -> the data file that lists it, following include: lines once each."""
    if name in seen:
        return {}
    seen.add(name)
    found: dict[str, str] = {}
    for raw in read(git_dir, name).splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or "@" in line:
            continue
        kind, _, value = line.partition(":") if ":" in line else ("domain", "", line)
        if kind == "include":
            for host, origin in hosts_of(git_dir, value.strip(), seen).items():
                found.setdefault(host, origin)
        elif kind in ("domain", "full"):
            found.setdefault(value.strip().lower(), name)
    return found


def main(argv: list[str]) -> int:
    git_dir = argv[0]
    commit = subprocess.run(
        ["git", "--git-dir", git_dir, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    hosts: dict[str, str] = {}
    seen: set[str] = set()
    for root in ROOTS:
        for host, origin in hosts_of(git_dir, root, seen).items():
            hosts.setdefault(host, origin)
    print("# Independent list of AI hosts: https://github.com/v2fly/domain-list-community")
    print(f"# commit {commit}, files {', '.join(f'data/{r}' for r in ROOTS)} with includes resolved")
    print("# host<TAB>the data file that lists it")
    for host in sorted(hosts):
        print(f"{host}\t{hosts[host]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
