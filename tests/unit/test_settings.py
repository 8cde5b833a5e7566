"""ShadowgateSettings.configure in-process (mitmproxy's taddons): a bad option or file is an
OptionsError naming the file, line and reason; at start-up mitmdump exits on it, at run time the
change is rolled back (tests/test_settings.py shows both on a real proxy)."""

from __future__ import annotations

import pytest
from mitmproxy.exceptions import OptionsError
from mitmproxy.test import taddons

from shadowgate.stages.settings import ShadowgateSettings


@pytest.fixture
def settings_context(tmp_path):
    """The addon loaded, confdir in tmp_path (the fingerprint key is created there), no database."""
    settings = ShadowgateSettings()
    with taddons.context(settings) as tctx:
        tctx.configure(settings, confdir=str(tmp_path / "conf"))
        yield settings, tctx


@pytest.mark.parametrize(
    "option, content, message",
    [
        ("shadowgate_policy", "passthrough:\n  - 'https://x.com/'\n", "policy.yaml:2: 'passthrough'"),
        ("shadowgate_policy", "rulez: []\n", "policy.yaml:1: policy: unknown keys ['rulez']"),
        (
            "shadowgate_providers",
            "categories: {api: x}\nwire_formats: {}\nproviders: []\n",
            "'wire_formats' must be a non-empty mapping",
        ),
        ("shadowgate_users", "networks:\n  - {cidr: 10.0.0.0/33, user: a}\n", "policy.yaml:2: bad cidr"),
    ],
)
def test_broken_file_is_rejected_with_file_line_and_reason(settings_context, tmp_path, option, content, message):
    settings, tctx = settings_context
    path = tmp_path / "policy.yaml"
    path.write_text(content)
    before = getattr(tctx.options, option)
    with pytest.raises(OptionsError) as e:
        tctx.configure(settings, **{option: str(path)})
    assert message in str(e.value)
    assert getattr(tctx.options, option) == before  # rolled back


def test_a_rejected_policy_keeps_the_one_in_force(settings_context, tmp_path):
    settings, tctx = settings_context
    good = tmp_path / "good.yaml"
    good.write_text("rules:\n  - {id: no-deepseek, match: {provider: deepseek}, action: block}\n")
    tctx.configure(settings, shadowgate_policy=str(good))
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n")
    with pytest.raises(OptionsError, match="bad.yaml"):
        tctx.configure(settings, shadowgate_policy=str(bad))
    # The rollback configures the previous value again: the same file, read again.
    assert settings.policy.source == str(good) and [r.id for r in settings.policy.rules] == ["no-deepseek"]
    assert tctx.options.shadowgate_policy == str(good)


def test_bad_intercept_mode_is_rejected(settings_context):
    settings, tctx = settings_context
    with pytest.raises(OptionsError, match="shadowgate_intercept must be one of catalog, all, not 'everything'"):
        tctx.configure(settings, shadowgate_intercept="everything")
    tctx.configure(settings, shadowgate_intercept="all")
    assert settings.intercept_all is True


@pytest.mark.parametrize(
    "option, message",
    [
        ("shadowgate_retention_days", "shadowgate_retention_days must be >= 0"),
        ("shadowgate_max_parse_bytes", "shadowgate_max_parse_bytes must be >= 0"),
    ],
)
def test_negative_sizes_are_rejected(settings_context, option, message):
    settings, tctx = settings_context
    with pytest.raises(OptionsError, match=message):
        tctx.configure(settings, **{option: -1})
    assert getattr(tctx.options, option) >= 0


def test_unwritable_fingerprint_key_is_rejected(settings_context, tmp_path):
    settings, tctx = settings_context
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OptionsError, match="cannot read or create"):
        tctx.configure(settings, shadowgate_fingerprint_key=str(tmp_path / "a-file" / "key"))


def test_fingerprint_key_is_created_once_and_reused(settings_context, tmp_path):
    settings, tctx = settings_context
    key = tmp_path / "conf" / "shadowgate-fingerprint.key"
    assert key.exists() and settings.secret == key.read_bytes().strip()
    first = settings.fingerprinter
    tctx.configure(settings, shadowgate_fingerprint_key=str(key))
    assert settings.secret == key.read_bytes().strip() and settings.fingerprinter is not first


def test_a_map_remote_that_replaces_with_nothing_is_warned_about(tmp_path, caplog):
    """new-user F1: `|//api.openai.com|//127.0.0.1:18443|` reads as filter, regex and an empty
    replacement, so it changes nothing and mitmproxy says nothing; the proxy says why."""
    from mitmproxy.addons.mapremote import MapRemote

    settings = ShadowgateSettings()
    with taddons.context(settings, MapRemote()) as tctx:
        tctx.configure(settings, confdir=str(tmp_path), map_remote=["|https://api.openai.com|http://127.0.0.1:1"])
        assert "map_remote" not in caplog.text
        tctx.configure(settings, map_remote=["|//api.openai.com|//127.0.0.1:18443|"])
    assert "map_remote '|//api.openai.com|//127.0.0.1:18443|': the replacement is empty" in caplog.text
