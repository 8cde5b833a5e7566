"""A typo in an option name stops start-up with a suggestion, instead of a proxy that enforces
nothing (issue 18)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mitmproxy.test import taddons

from shadowgate.stages.unknown_options import UnknownOptions
from tests.support.forked import start_mitmdump

ROOT = Path(__file__).resolve().parent.parent
MITMDUMP = str(Path(sys.executable).parent / "mitmdump")


def test_an_unknown_option_is_named_with_the_closest_known_one():
    addon = UnknownOptions()
    with taddons.context(addon) as tctx:
        tctx.options.add_option("shadowgate_policy", str, "", "the policy file")
        tctx.options.set("shadowgate_polcy=policy.yaml", defer=True)
        assert addon.check() == [
            "unknown option 'shadowgate_polcy' (from --set or config.yaml): no addon declares it; "
            "did you mean 'shadowgate_policy'?"
        ]


def start_and_exit(command: list[str], tmp_path, *args: str) -> tuple[int, str]:
    """Run a proxy command that must stop at start-up: its exit status and everything it printed."""
    done = subprocess.run(
        [*command, "--listen-port", "0", "--set", f"confdir={tmp_path}",
         "--set", f"shadowgate_db={tmp_path / 'db.duckdb'}", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


MITMDUMP_WITH_SCRIPT = [MITMDUMP, "--listen-host", "127.0.0.1", "-s", str(ROOT / "addons" / "shadowgate.py")]
SHADOWGATE_PROXY = [str(Path(sys.executable).parent / "shadowgate"), "proxy"]


def mitmdump_start_and_exit(tmp_path, *args: str) -> tuple[int, str]:
    """start_and_exit for `mitmdump -s addons/shadowgate.py`, forked as the harness starts every
    mitmdump (tests/support/forked.py: mitmdump's own entry point, ~1 s of CPU less than an exec)."""
    log = tmp_path / "mitmdump.log"
    process = start_mitmdump(
        [*MITMDUMP_WITH_SCRIPT, "--listen-port", "0", "--set", f"confdir={tmp_path}",
         "--set", f"shadowgate_db={tmp_path / 'db.duckdb'}", *args],
        ROOT, log,
    )  # fmt: skip
    try:
        status = process.wait(60)
    finally:
        process.kill()  # still running after a minute: the assertion below says so
    return status, log.read_text(errors="replace")


# mitmdump -s loads its scripts only once the servers are up, so there the proxy stops right after
# "listening" (mitmproxy's ErrorCheck); `shadowgate proxy` registers the addons first and stops before.
def test_a_mistyped_option_stops_mitmdump_with_the_script(tmp_path):
    status, output = mitmdump_start_and_exit(tmp_path, "--set", "shadowgate_polcy=policy.yaml")
    assert status == 1, output
    assert "unknown option 'shadowgate_polcy'" in output and "did you mean 'shadowgate_policy'?" in output
    assert "Error logged during startup, exiting" in output


def test_a_mistyped_option_in_config_yaml_stops_the_proxy_too(tmp_path):
    (tmp_path / "config.yaml").write_text("shadowgate_polcy: policy.yaml\n")
    status, output = mitmdump_start_and_exit(tmp_path)
    assert status == 1 and "did you mean 'shadowgate_policy'?" in output, output


def test_shadowgate_proxy_refuses_a_mistyped_option_in_one_line_before_listening(tmp_path):
    status, output = start_and_exit(SHADOWGATE_PROXY, tmp_path, "--set", "shadowgate_polcy=policy.yaml")
    assert status == 1, output
    assert "unknown option 'shadowgate_polcy'" in output and "did you mean 'shadowgate_policy'?" in output
    assert "listening at" not in output and "Traceback" not in output


def test_shadowgate_proxy_refuses_a_broken_policy_in_one_line_before_listening(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - id: a\n    action: nuke\n")
    status, output = start_and_exit(SHADOWGATE_PROXY, tmp_path, "--set", f"shadowgate_policy={policy}")
    assert status == 1, output
    assert f"{policy}:3:" in output and "action must be one of" in output
    assert "listening at" not in output and "Traceback" not in output


def test_a_missing_file_is_named_with_the_option_it_came_from_and_no_banner_comes_first(tmp_path):
    """new-user F5: `/x: cannot read file` alone does not say which option named /x; and the trust
    advice ("Then point clients at the proxy") is for a proxy that started, not one that did not."""
    for option in ("shadowgate_providers", "shadowgate_policy", "shadowgate_users"):
        status, output = start_and_exit(SHADOWGATE_PROXY, tmp_path, "--set", f"{option}={tmp_path / 'nope.yaml'}")
        assert status == 1, output
        assert f"{option}: {tmp_path / 'nope.yaml'}: cannot read file" in output, output
        assert "point clients at the proxy" not in output and "Traceback" not in output
    status, output = start_and_exit(
        SHADOWGATE_PROXY, tmp_path, "--set", f"shadowgate_providers_extra={tmp_path / 'company.yaml'}"
    )
    assert f"shadowgate_providers_extra: {tmp_path / 'company.yaml'}: cannot read file" in output, output


@pytest.mark.parametrize(
    "line, message",
    [
        ("shadowgate_siem: json:/tmp/x.jsonl", "shadowgate_siem: a list of strings (a YAML list: [a, b]), not a str"),
        ("shadowgate_retention_days: '30'", "shadowgate_retention_days: an int, not a str"),
        ("shadowgate_policy: [a, b]", "shadowgate_policy: a str, not a list"),
    ],
)
def test_a_wrongly_typed_value_in_config_yaml_is_one_line_not_a_traceback(tmp_path, line, message):
    """new-user F13: mitmproxy raises a TypeError for these; the proxy names the file and the option."""
    (tmp_path / "config.yaml").write_text(line + "\n")
    status, output = start_and_exit(SHADOWGATE_PROXY, tmp_path)
    assert status == 1 and "Traceback" not in output, output
    assert f"shadowgate: {tmp_path / 'config.yaml'}: {message}" in output, output
