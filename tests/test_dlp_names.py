"""PERSON_NAME, the opt-in type: off unless a policy names it, then found, redacted and blocked
like any type, in the library, the policy and a real proxy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shadowgate.config.policy import load_policy
from shadowgate.dlp import OPT_IN_TYPES
from shadowgate.dlp import TYPES
from shadowgate.dlp import Placeholders
from shadowgate.dlp import Scanner
from shadowgate.dlp import redact

FIXTURES = Path(__file__).parent / "fixtures" / "dlp_public"
PROMPT = "Write a reference letter for Maria Gonzalez, who reported to Robert J. Langer; mail jane.doe@corp.example"


def _found(scanner: Scanner, text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in scanner.scan(text)]


def test_person_name_is_a_known_type_but_not_a_default_one():
    assert OPT_IN_TYPES == {"PERSON_NAME"} and TYPES["PERSON_NAME"] == "pii"
    default = Scanner()
    assert "PERSON_NAME" not in default.types
    assert _found(default, PROMPT) == [("EMAIL", "jane.doe@corp.example")]


def test_an_opted_in_scanner_finds_names_next_to_every_other_type():
    scanner = Scanner(opt_in={"PERSON_NAME"})
    assert _found(scanner, PROMPT) == [
        ("PERSON_NAME", "Maria Gonzalez"),
        ("PERSON_NAME", "Robert J. Langer"),
        ("EMAIL", "jane.doe@corp.example"),
    ]
    safe = redact(PROMPT, scanner.scan(PROMPT), Placeholders().for_text(PROMPT))
    assert safe == ("Write a reference letter for [PERSON_NAME_1], who reported to [PERSON_NAME_2]; mail [EMAIL_1]")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Ask José García and Allan Björk", ["José García", "Allan Björk"]),  # the lists' Jose Garcia, Bjork
        ("cc Kate M Brown and Robert J. Langer", ["Kate M Brown", "Robert J. Langer"]),
        ("Ask Jane Smith. Thanks Mary Jones", ["Jane Smith", "Mary Jones"]),  # after a capitalised word
        ("ship it to 124 Devon Street, or 9 John Street", []),  # streets, not people
        ("meet at 1317 Kimberly Way near Forrest Hill Road", []),
        ("So Jane went home", []),  # a sentence's first word is no first name
        ("jane smith and JANE SMITH", []),  # lower and upper case: not claimed
    ],
)
def test_what_the_name_finder_reports(text, names):
    scanner = Scanner({"PERSON_NAME"})
    assert [v for _, v in _found(scanner, text)] == names


def test_including_builds_one_scanner_per_set_and_keeps_a_type_list():
    base = Scanner()
    assert base.including(()) is base
    with_names = base.including({"PERSON_NAME"})
    assert with_names is base.including(["PERSON_NAME"]) and "PERSON_NAME" in with_names.types
    assert with_names.including({"PERSON_NAME"}) is with_names
    only_email = Scanner({"EMAIL"}).including({"PERSON_NAME"})
    assert only_email.types == {"EMAIL", "PERSON_NAME"}
    assert [t for t, _ in _found(only_email, PROMPT)] == ["PERSON_NAME", "PERSON_NAME", "EMAIL"]
    assert _found(Scanner({"PERSON_NAME"}), "Maria Gonzalez at jane.doe@corp.example") == [
        ("PERSON_NAME", "Maria Gonzalez")
    ]


def test_precision_and_recall_on_presidio_research_sentences():
    """The labelled sentences of microsoft/presidio-research (scripts/bench_dlp_names.py prints the
    figures): a floor under today's measurement, so a change that loses names or reports more
    non-names fails here."""
    rows = [json.loads(line) for line in (FIXTURES / "person_names.jsonl").open(encoding="utf-8")]
    scanner = Scanner({"PERSON_NAME"})
    findings = correct = two_word = two_word_found = 0
    for row in rows:
        got = [(f.start, f.end) for f in scanner.scan(row["text"])]
        findings += len(got)
        correct += sum(any(s < pe and ps < e for ps, pe in row["person"]) for s, e in got)
        for ps, pe in row["person"]:
            if " " in row["text"][ps:pe].strip():
                two_word += 1
                two_word_found += any(s < pe and ps < e for s, e in got)
    assert len(rows) == 1500 and correct / findings >= 0.85 and two_word_found / two_word >= 0.27


def test_only_opt_in_types_can_be_opted_in():
    with pytest.raises(ValueError, match="not opt-in"):
        Scanner(opt_in={"EMAIL"})
    with pytest.raises(ValueError, match="unknown"):
        Scanner({"PERSON_NAMES"})


@pytest.mark.parametrize(
    ("section", "opt_in"),
    [
        ("dlp: {types: {PERSON_NAME: redact}}", {"PERSON_NAME"}),
        ("dlp: {secrets: off, pii: off, types: {PERSON_NAME: block}}", {"PERSON_NAME"}),
        ("dlp: {pii: redact}", set()),  # every PII type but the opt-in ones
        ("dlp: {pii: block, types: {PERSON_NAME: off}}", set()),
        ("dlp: {types: {PERSON_NAME: no}}", set()),  # YAML's no: off
    ],
)
def test_a_policy_opts_in_by_naming_the_type(tmp_path, section, opt_in):
    path = tmp_path / "policy.yaml"
    path.write_text(section + "\n")
    dlp = load_policy(path).dlp
    assert dlp is not None and dlp.opt_in == opt_in


def test_person_names_is_an_unknown_type_in_a_policy(tmp_path):
    from shadowgate.config.yamlfile import ConfigError

    path = tmp_path / "policy.yaml"
    path.write_text("dlp: {types: {PERSON_NAMES: redact}}\n")
    with pytest.raises(ConfigError, match="PERSON_NAMES"):
        load_policy(path)


# --- Through a real proxy ----------------------------------------------------------------------

NAME_PROMPT = "Draft a warning letter to Maria Gonzalez about her expenses; cc jane.doe@corp.example"


def _send(proxy, tmp_path, user: str, policy: str):
    path = tmp_path / f"{user}.yaml"
    path.write_text(policy)
    with proxy.options(shadowgate_policy=str(path)), proxy.client(user) as client:
        answer = client.post(
            "https://api.openai.com/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": NAME_PROMPT}]},
            headers={"authorization": "Bearer sk-test", "x-case": user},
        )
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return answer, row


def _seen(upstream, user: str) -> list[dict]:
    return [json.loads(s.body) for s in upstream.seen if s.headers.get("x-case") == user]


def test_an_opted_in_name_is_redacted_through_the_proxy(proxy, upstream, tmp_path):
    answer, row = _send(proxy, tmp_path, "names-redact", "dlp: {pii: redact, types: {PERSON_NAME: redact}}\n")
    assert answer.status_code == 200
    [body] = _seen(upstream, "names-redact")
    assert body["messages"][0]["content"] == (
        "Draft a warning letter to [PERSON_NAME_1] about her expenses; cc [EMAIL_1]"
    )
    assert (row["dlp_findings"], row["dlp_action"]) == ("EMAIL:1,PERSON_NAME:1", "redact")


def test_an_opted_in_name_can_block_through_the_proxy(proxy, upstream, tmp_path):
    answer, row = _send(proxy, tmp_path, "names-block", "dlp: {pii: log, types: {PERSON_NAME: block}}\n")
    assert answer.status_code == 403 and "PERSON_NAME" in answer.text
    assert _seen(upstream, "names-block") == []
    assert (row["dlp_findings"], row["dlp_action"]) == ("EMAIL:1,PERSON_NAME:1", "block")


def test_without_the_opt_in_a_name_goes_through_unchanged(proxy, upstream, tmp_path):
    answer, row = _send(proxy, tmp_path, "names-off", "dlp: {secrets: block, pii: redact}\n")
    assert answer.status_code == 200
    [body] = _seen(upstream, "names-off")
    assert body["messages"][0]["content"] == "Draft a warning letter to Maria Gonzalez about her expenses; cc [EMAIL_1]"
    assert (row["dlp_findings"], row["dlp_action"]) == ("EMAIL:1", "redact")
