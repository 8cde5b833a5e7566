"""Small things a newcomer trips over (issue 18): --version, and a closed pipe is not a traceback."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shadowgate import __version__
from shadowgate.cli import build_parser

SHADOWGATE = str(Path(sys.executable).parent / "shadowgate")
INSTALL_DOC = Path(__file__).resolve().parent.parent / "docs" / "install.md"


def test_version_prints_the_installed_version():
    done = subprocess.run([SHADOWGATE, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"shadowgate {__version__}"
    assert __version__ != "0.0.0+unknown"


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    # `shadowgate catalog match - | head -1` on a long list: the reader leaves after one line.
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("\n".join(f"api{i}.openai.com" for i in range(20000)))
    with hosts.open("rb") as stdin:
        process = subprocess.Popen(
            [SHADOWGATE, "catalog", "match", "-"], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    assert process.stdout and process.stderr
    assert process.stdout.readline().startswith(b"api0.openai.com")
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=60) in (0, 141)
    assert b"Traceback" not in err and b"BrokenPipe" not in err


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """Every command argparse knows, with the names of its own subcommands (policy: check, explain)."""
    commands: dict[str, set[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                commands[name] = {
                    n for a in sub._actions if isinstance(a, argparse._SubParsersAction) for n in a.choices
                }
    return commands


def _missing(commands: dict[str, set[str]], usages: list[str]) -> list[str]:
    """The commands (and subcommands) that no usage line `shadowgate NAME [SUB|SUB ...]` names."""
    words = [re.split(r"[\s|]+", usage.replace("\\|", "|")) for usage in usages]
    missing = []
    for name, subs in commands.items():
        lines = [w for w in words if len(w) > 1 and w[0] == "shadowgate" and w[1] == name]
        if not lines:
            missing.append(name)
        missing += [f"{name} {sub}" for sub in sorted(subs) if not any(sub in w[2:] for w in lines)]
    return missing


@pytest.mark.parametrize("where", ["shadowgate --help", "docs/install.md"])
def test_every_command_is_in_the_help_summary_and_the_install_doc(where, capsys):
    commands = _subcommands(build_parser())
    assert {"proxy", "demo", "serve", "webapps", "policy"} <= set(commands) and commands["policy"] == {
        "check",
        "explain",
    }
    if where == "shadowgate --help":
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--help"])
        usages = [line for line in capsys.readouterr().out.splitlines() if line.startswith("shadowgate ")]
    else:
        table = INSTALL_DOC.read_text(encoding="utf-8").split("## The commands", 1)[1].split("\n## ", 1)[0]
        usages = re.findall(r"`(shadowgate [^`]+)`", table)
    assert not _missing(commands, usages), f"{where} does not name: {_missing(commands, usages)}"


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--top", "-1"],
        ["report", "--top", "0"],
        ["serve", "--top", "0"],
        ["usage", "--days", "0"],
        ["usage", "--days", "-5"],
    ],
)
def test_counts_must_be_positive(argv, capsys):
    """new-user F10: --top -1 blamed the database, --top 0 printed "Top 0 spenders", --days -5 a
    header about -5 days. argparse refuses them, naming the option."""
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2
    assert f"argument {argv[-2]}: must be a positive integer, not {argv[-1]!r}" in capsys.readouterr().err
