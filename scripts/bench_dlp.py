"""DLP detection quality and speed: shadowgate side by side with presidio-analyzer and detect-secrets.

    cd /work/main && uv run --group bench python scripts/bench_dlp.py     # all three tools
    cd /work/main && uv run python scripts/bench_dlp.py                   # shadowgate only

The corpus is tests/fixtures/dlp/ (scripts/make_dlp_corpus.py writes it). Per type: recall and
precision with full-value matching (a label is found only when ONE finding covers the whole
labelled value; a finding is correct only when it covers a whole label; see
addons/shadowgate/dlp/evaluation.py), then per kind, the share of clean prompts that any finding would alter,
and speed on one core:

* MB/s on the clean prompts joined into one text (what most prompt text looks like), and on the
  labelled documents joined (worst case: a secret or personal value every ~200 characters);
* microseconds per clean prompt scanned one by one (a short prompt costs the fixed overhead);
* a 100 KB prompt (clean prompts with a labelled document after every 20), and 100 KB of
  labelled documents only; best of several runs, in CPU time (time.process_time).

How the other tools run (dev-only dependencies, never runtime ones):
* presidio-analyzer: AnalyzerEngine with the "no_op" NLP engine (NoOpNlpEngine: no spaCy model is
  loaded or downloaded), so only its pattern recognizers run, with their default score threshold.
  It runs for the entities that have a counterpart here; the country-specific recognizers that
  presidio registers only for their own language (UK_NINO, ES_NIF, ES_NIE, IT_FISCAL_CODE,
  IT_VAT_CODE, DE_TAX_ID) are added for English so they get their chance. tldextract is pointed at
  its bundled suffix list, so nothing is fetched.
* detect-secrets: its default plugins and filters, line by line, exactly as its own file scanner
  does for a .txt file (core.scan._process_line_based_plugins); a finding's offset is where its
  value occurs in its line.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
import warnings
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from shadowgate.dlp import TYPES  # noqa: E402
from shadowgate.dlp import Scanner  # noqa: E402
from shadowgate.dlp.evaluation import Document  # noqa: E402
from shadowgate.dlp.evaluation import Report  # noqa: E402
from shadowgate.dlp.evaluation import evaluate  # noqa: E402
from shadowgate.dlp.evaluation import kind_of  # noqa: E402
from shadowgate.dlp.evaluation import load  # noqa: E402

Span = tuple[int, int, str]
Find = Callable[[str], Iterable[Span]]

TARGETS = {"secret": (0.99, 0.98), "pii": (0.97, 0.95)}
CLEAN_ALTERED_MAX = 0.02
MBPS_MIN = 10.0
PROMPT_100K_MAX_MS = 10.0


# --- The tools --------------------------------------------------------------------------------


def shadowgate_find() -> Find:
    scanner = Scanner()
    return lambda text: [(f.start, f.end, f.type) for f in scanner.scan(text)]


PRESIDIO_TYPES = {
    "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD", "IBAN_CODE": "IBAN",
    "US_SSN": "US_SSN", "US_ITIN": "US_ITIN", "US_PASSPORT": "US_PASSPORT", "MAC_ADDRESS": "MAC_ADDRESS",
    "UK_NINO": "UK_NINO", "ES_NIF": "ES_DNI", "ES_NIE": "ES_NIE", "IT_FISCAL_CODE": "IT_FISCAL_CODE",
    "IT_VAT_CODE": "EU_VAT", "DE_TAX_ID": "DE_TAX_ID", "IP_ADDRESS": "IP",
}  # fmt: skip


def presidio_find() -> Find | str:
    if importlib.util.find_spec("presidio_analyzer") is None:
        return "not installed (uv run --group bench ...)"
    import tldextract

    # The e-mail recognizer calls tldextract.extract, whose default fetches the public suffix list.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())  # type: ignore[assignment]
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import DeTaxIdRecognizer
    from presidio_analyzer.predefined_recognizers import EsNieRecognizer
    from presidio_analyzer.predefined_recognizers import EsNifRecognizer
    from presidio_analyzer.predefined_recognizers import ItFiscalCodeRecognizer
    from presidio_analyzer.predefined_recognizers import ItVatCodeRecognizer
    from presidio_analyzer.predefined_recognizers import UkNinoRecognizer

    nlp = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "no_op"}]}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "LemmaContextAwareEnhancer cannot use context words ..."
        engine = AnalyzerEngine(nlp_engine=nlp.create_engine(), supported_languages=["en"])
    for recognizer in (
        UkNinoRecognizer,
        EsNifRecognizer,
        EsNieRecognizer,
        ItFiscalCodeRecognizer,
        ItVatCodeRecognizer,
        DeTaxIdRecognizer,
    ):
        engine.registry.add_recognizer(recognizer(supported_language="en"))
    entities = sorted(PRESIDIO_TYPES)

    def find(text: str) -> list[Span]:
        out = []
        for r in engine.analyze(text=text, language="en", entities=entities):
            t = PRESIDIO_TYPES[r.entity_type]
            if t == "IP":
                t = "IPV6" if ":" in text[r.start : r.end] else "IPV4"
            out.append((r.start, r.end, t))
        return out

    return find


DETECT_SECRETS_TYPES = {
    "AWS Access Key": "AWS_ACCESS_KEY", "Azure Storage Account access key": "AZURE_STORAGE_KEY", "Basic Auth Credentials": "URL_PASSWORD",
    "Discord Bot Token": "DISCORD_BOT_TOKEN", "GitHub Token": "GITHUB_TOKEN", "GitLab Token": "GITLAB_TOKEN", "JSON Web Token": "JWT",
    "Mailchimp Access Key": "MAILCHIMP_API_KEY", "NPM tokens": "NPM_TOKEN", "OpenAI Token": "OPENAI_API_KEY", "Private Key": "PRIVATE_KEY",
    "PyPI Token": "PYPI_TOKEN", "SendGrid API Key": "SENDGRID_API_KEY", "Slack Token": "SLACK_TOKEN", "Square OAuth Secret": "SQUARE_TOKEN",
    "Stripe Access Key": "STRIPE_KEY", "Telegram Bot Token": "TELEGRAM_BOT_TOKEN", "Twilio API Key": "TWILIO_API_KEY", "Public IP (ipv4)": "IPV4",
}  # fmt: skip


def detect_secrets_find() -> Find | str:
    if importlib.util.find_spec("detect_secrets") is None:
        return "not installed (uv run --group bench ...)"
    from detect_secrets.core import scan
    from detect_secrets.settings import default_settings

    def find(text: str) -> list[Span]:
        lines = text.split("\n")
        starts = [0]
        for line in lines[:-1]:
            starts.append(starts[-1] + len(line) + 1)
        out = []
        with default_settings():
            for s in scan._process_line_based_plugins(list(enumerate(lines, 1)), filename="prompt.txt"):
                line = lines[s.line_number - 1]
                at = line.find(s.secret_value or "")
                if at >= 0 and s.secret_value:
                    out.append(
                        (
                            starts[s.line_number - 1] + at,
                            starts[s.line_number - 1] + at + len(s.secret_value),
                            DETECT_SECRETS_TYPES.get(s.type, "GENERIC_SECRET"),
                        )
                    )
        return out

    return find


# --- Measuring ----------------------------------------------------------------------------------


def joined(docs: list[Document]) -> str:
    return "\n\n".join(d.text for d in docs)


def prompt_100k(docs: list[Document], clean: list[Document], labelled_every: int) -> str:
    """100 KB of prompt text: clean prompts with one labelled document (of every genre in turn)
    after every `labelled_every` of them (0: labelled documents only)."""
    parts: list[str] = []
    size = i = j = 0
    while size < 100 * 1024:
        if labelled_every == 0 or i % (labelled_every + 1) == labelled_every:
            text = docs[j * 97 % len(docs)].text  # a stride through the file: every genre in turn
            j += 1
        else:
            text = clean[i % len(clean)].text
        parts.append(text)
        size += len(text.encode("utf-8")) + 2
        i += 1
    return "\n\n".join(parts).encode("utf-8")[: 100 * 1024].decode("utf-8", "ignore")


def best_seconds(find: Find, texts: list[str], runs: int) -> float:
    """CPU seconds of this process (time.process_time), best of runs: the machines this runs on
    are shared, and wall-clock time also counts the other processes' turns."""
    times = []
    for _ in range(runs):
        t = time.process_time()
        for text in texts:
            list(find(text))
        times.append(time.process_time() - t)
    return min(times)


def run_tool(find: Find, docs: list[Document], clean: list[Document], runs: int) -> tuple[Report, dict[str, float]]:
    report = evaluate(docs, clean, find)
    speed: dict[str, float] = {}
    for part, texts in (("labelled", [joined(docs)]), ("clean", [joined(clean)])):
        speed[part] = len(texts[0].encode("utf-8")) / best_seconds(find, texts, runs) / 1e6
    per_prompt = [d.text for d in clean]
    speed["per_prompt_us"] = best_seconds(find, per_prompt, runs) / len(per_prompt) * 1e6
    speed["100k_ms"] = best_seconds(find, [prompt_100k(docs, clean, 20)], runs * 5) * 1000
    speed["100k_dense_ms"] = best_seconds(find, [prompt_100k(docs, clean, 0)], runs * 5) * 1000
    return report, speed


# --- Printing ------------------------------------------------------------------------------------


def pct(x: float) -> str:
    return "    -" if math.isnan(x) else f"{100 * x:5.1f}"  # NaN: nothing to measure


def print_table(
    results: dict[str, tuple[Report, dict[str, float]] | str], docs: list[Document], clean: list[Document]
) -> None:
    n_labels = sum(len(d.labels) for d in docs)
    print(
        f"DLP quality and speed on tests/fixtures/dlp: {len(docs)} labelled documents ({n_labels} labels), {len(clean)} clean prompts"
    )
    print(
        "Full-value match: a label counts as found only if one finding covers all of it; R = recall, P = precision (%)."
    )
    for name, res in results.items():
        if isinstance(res, str):
            print(f"{name}: {res}")
    ran = {k: v for k, v in results.items() if not isinstance(v, str)}
    header = f"{'type':26} {'kind':6} {'labels':>6} |" + "".join(f" {name[:14]:>14}     R     P |" for name in ran)
    print()
    print(header)
    print("-" * len(header))
    label_types = sorted({lab[2] for d in docs for lab in d.labels}, key=lambda t: (TYPES.get(t, "z"), t))
    for t in label_types:
        n = sum(1 for d in docs for lab in d.labels if lab[2] == t)
        row = f"{t:26} {TYPES.get(t, '?'):6} {n:6} |"
        for report, _ in ran.values():
            c = report.by_type.get(t)
            row += f" {'':14} {pct(c.recall) if c else pct(0.0)} {pct(c.precision) if c and c.findings else '    -'} |"
        print(row)
    print("-" * len(header))
    for kind, label in (("secret", "all secrets"), ("pii", "all structured PII")):
        n = sum(1 for d in docs for lab in d.labels if kind_of(lab[2]) == kind)
        row = f"{label:26} {kind:6} {n:6} |"
        for report, _ in ran.values():
            c = report.by_kind.get(kind)
            row += f" {'':14} {pct(c.recall) if c else pct(0.0)} {pct(c.precision) if c and c.findings else '    -'} |"
        print(row)
    print()
    width = 34
    print(f"{'':{width}}" + "".join(f" {name:>16}" for name in ran))
    print(
        f"{'clean prompts altered':{width}}"
        + "".join(
            f" {f'{100 * r.clean_altered_share:.1f}% ({r.clean_altered}/{r.clean_docs})':>16}" for r, _ in ran.values()
        )
    )
    print(f"{'MB/s, clean prompts joined':{width}}" + "".join(f" {s['clean']:16.2f}" for _, s in ran.values()))
    print(f"{'MB/s, labelled corpus joined':{width}}" + "".join(f" {s['labelled']:16.2f}" for _, s in ran.values()))
    print(
        f"{'us per clean prompt, one by one':{width}}"
        + "".join(f" {s['per_prompt_us']:16.0f}" for _, s in ran.values())
    )
    print(
        f"{'100 KB prompt, ms (1 in 21 labelled)':{width}}" + "".join(f" {s['100k_ms']:16.1f}" for _, s in ran.values())
    )
    print(
        f"{'100 KB labelled documents only, ms':{width}}"
        + "".join(f" {s['100k_dense_ms']:16.1f}" for _, s in ran.values())
    )
    if "shadowgate" in ran:
        report, speed = ran["shadowgate"]
        print()
        print("shadowgate against the targets:")
        for kind, (r_min, p_min) in TARGETS.items():
            c = report.by_kind[kind]
            ok = c.recall >= r_min and c.precision >= p_min
            print(
                f"  {kind:6} recall {pct(c.recall)}% >= {100 * r_min:.0f}%, precision {pct(c.precision)}% >= {100 * p_min:.0f}%: {'ok' if ok else 'MISSED'}"
            )
        ok = report.clean_altered_share <= CLEAN_ALTERED_MAX
        print(
            f"  clean prompts altered {100 * report.clean_altered_share:.1f}% <= {100 * CLEAN_ALTERED_MAX:.0f}%: {'ok' if ok else 'MISSED'}"
        )
        for part, label in (
            ("clean", "clean prompt text"),
            ("labelled", "labelled corpus (a value every ~200 characters)"),
        ):
            print(
                f"  {label}: {speed[part]:.1f} MB/s >= {MBPS_MIN:.0f} MB/s: {'ok' if speed[part] >= MBPS_MIN else 'MISSED'}"
            )
        for key, label in (("100k_ms", "100 KB prompt"), ("100k_dense_ms", "100 KB of labelled documents")):
            print(
                f"  {label}: {speed[key]:.1f} ms <= {PROMPT_100K_MAX_MS:.0f} ms: {'ok' if speed[key] <= PROMPT_100K_MAX_MS else 'MISSED'}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", default="shadowgate,presidio,detect-secrets")
    parser.add_argument("--misses", type=int, default=0, help="print up to N shadowgate misses and false positives")
    args = parser.parse_args(argv)
    docs, clean = load("corpus.jsonl"), load("clean.jsonl")
    makers = {"shadowgate": shadowgate_find, "presidio": presidio_find, "detect-secrets": detect_secrets_find}
    results: dict[str, tuple[Report, dict[str, float]] | str] = {}
    for name in args.tools.split(","):
        find = makers[name]()
        if isinstance(find, str):
            results[name] = find
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = run_tool(find, docs, clean, runs=10 if name == "shadowgate" else 1)
    print_table(results, docs, clean)
    sg = results.get("shadowgate")
    if args.misses and not isinstance(sg, (str, type(None))):
        report = sg[0]
        for title, rows in (("misses", report.misses), ("false positives", report.false_positives)):
            print(f"\nshadowgate {title} ({len(rows)}):")
            for doc_id, span, value in rows[: args.misses]:
                print(f"  {doc_id} {span[2]} {value!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
