"""The report's executive summary: a few sentences a manager reads first, from the sections' own numbers."""

from __future__ import annotations

from typing import Any

from shadowgate.report.runner import Report


def _records(report: Report, *path: str) -> list[dict[str, Any]]:
    """A section's rows, or none when a custom reports folder has no such section."""
    return next((s.records() for s in report.sections if s.path == path), [])


def money(value: float | None) -> str:
    """Cents from a dollar up, four places below; below $0.0001 (a few calls to a cheap model) the
    six places of `shadowgate usage`, so that priced calls never read as $0.0000. A known zero (no
    requests) is $0.00; an unknown cost (no price) is –."""
    if value is None:
        return "–"
    if value == 0 or abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) >= 0.0001:
        return f"${value:.4f}"
    return f"${value:.6f}" if abs(value) >= 0.0000005 else "<$0.000001"


def _pct(share: float) -> str:
    return f"{100 * share:.0f} %"


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _names(items: list[str], most: int = 3) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def summary(report: Report) -> list[str]:
    """Plain sentences (no markup), most important first; every renderer shows them before anything else."""
    h = report.headline
    if not h:
        return []
    value = {k: m["value"] for k, m in h.items()}
    out = []
    requests = value["requests"]
    change = h["requests"]["change"]
    trend = f"{change:+,} against {report.previous.label}" if change else f"as many as in {report.previous.label}"
    out.append(
        f"{_count(requests, 'AI request')} from {value['active_users']:,} {'person' if value['active_users'] == 1 else 'people'} "
        f"to {_count(value['apps'], 'app')} ({trend})."
    )
    unpriced = sum(r.get("unpriced") or 0 for r in _records(report, "cost", "by_provider"))
    if value["cost_usd"] is None:
        out.append("Estimated cost: unknown (–): none of the requests had a price.")
    else:
        text = f"Estimated cost: {money(value['cost_usd'])}"
        if h["cost_usd"]["previous"] is not None and h["cost_usd"]["change"] is not None:
            text += f" ({'+' if h['cost_usd']['change'] >= 0 else '-'}{money(abs(h['cost_usd']['change']))})"
        text += "."
        if unpriced:
            text += f" {_count(unpriced, 'request')} with tokens had no price and {'is' if unpriced == 1 else 'are'} not in it."
        out.append(text)
    if not requests:
        pass  # no shares of nothing; the headline shows them as –
    elif value.get("unapproved_share") is None:
        out.append(
            "Sanctioned or unapproved: unknown, because no policy was given (run with --policy); "
            "every request counts as unknown."
        )
    else:
        text = (
            f"{_pct(value['sanctioned_share'])} of requests were sanctioned use, {_pct(value['unapproved_share'])} "
            f"went to unapproved apps and {_pct(value['unknown_share'])} to apps the policy does not name."
        )
        top = _records(report, "unapproved", "users")
        if top and top[0].get("unapproved"):
            text += f" Most unapproved use: {top[0]['user']} ({top[0]['unapproved']:,} requests)."
        out.append(text)
    new_apps = [r["app"] for r in _records(report, "new", "apps")]
    new_models = [r["model"] for r in _records(report, "new", "models")]
    if new_apps or new_models:
        out.append(
            f"New this period: {_count(len(new_apps), 'app')}{' (' + _names(new_apps) + ')' if new_apps else ''} "
            f"and {_count(len(new_models), 'model')}."
        )
    dlp = _records(report, "dlp", "by_type")
    if dlp:
        findings = sum(r["findings"] for r in dlp)
        out.append(
            f"Sensitive data: {findings:,} items found in prompts ({_names([r['type'] for r in dlp])}); "
            "counts only, never the values."
        )
    blind = _records(report, "blind_spots")
    if blind:
        out.append(
            f"Not inspected: {_count(sum(r['requests'] for r in blind), 'request')} to "
            f"{_names(sorted({r['host'] for r in blind}))} (pinned apps or passthrough)."
        )
    near = [r for r in _records(report, "budget", "near_limit") if (r["max_percent"] or 0) >= 90]
    refused = sum(r["requests"] for r in _records(report, "budget", "rate_limited"))
    if near or refused:
        out.append(
            f"Budgets: {_count(len(near), 'person')} at 90 % or more of a limit; "
            f"{_count(refused, 'request')} refused by a limit.".replace("persons", "people")
        )
    servers = _records(report, "mcp", "servers")
    if servers:
        blocked = sum(r["blocked"] for r in servers)
        flags = sum(r["calls"] for r in _records(report, "mcp", "injection"))
        out.append(
            f"MCP tool servers: {len(servers)} in use, {sum(r['calls'] for r in servers):,} calls, "
            f"{blocked:,} refused, {flags:,} prompt-injection flags."
        )
    chat = _records(report, "chat_apps", "by_app")
    if chat:
        out.append(
            f"Chat apps: {sum(r['prompts'] for r in chat):,} prompts and {sum(r['uploads'] for r in chat):,} "
            f"uploads in {len(chat)} apps, {sum(r['non_corporate_prompts'] for r in chat):,} prompts from personal "
            f"or other workspaces, {sum(r['dlp_hits'] for r in chat):,} DLP hits. A chat app's request now counts "
            "as an AI request only when it is a prompt (telemetry no longer counts): earlier chat-web numbers "
            "are not comparable."
        )
    return out
