"""The daily and weekly digest as one short Slack message: a line per flow (top 5), within Slack's
limits, never a wall of text; and the same lines as plain text for a terminal (``finops digest``).

Percent of cap is floored to a whole percent (the one rounding rule of budgets, as in the report);
a change reads ``new`` when the period before had nothing, or too little, to compare with."""

from __future__ import annotations

from collections.abc import Sequence

from finops.domain.money import format_usd
from finops.domain.words import plural
from finops.notify.blockkit import SECTION_TEXT_MAX, clip_markup, context, fit, header, link, section
from finops.notify.messages import SlackMessage, dashboard_url
from finops.render.report_data import of_cap, relative_change
from finops.usecases.audit.digest import DigestLine, Period

__all__ = ["digest_message", "digest_text"]


def _change(now: int, before: int) -> str:
    return relative_change(now, before or None).replace("—", "new")


def _line(line: DigestLine) -> str:
    """One flow's figures, without the flow's name: ``$4.20 of $100.00 (4%), ... (+20.0% vs ...)``."""
    spent = format_usd(line.spend_nanos, cents=True)
    cap = ""
    if line.cap_nanos:
        share = of_cap(line.spend_nanos, line.cap_nanos)
        cap = f" of ${format_usd(line.cap_nanos, cents=True)} ({share})"
    cps = ""
    if line.cost_per_success_nanos:
        cps = f", ${format_usd(line.cost_per_success_nanos, cents=True)}/success"
    return f"${spent}{cap}{cps} ({_change(line.spend_nanos, line.prev_spend_nanos)} vs the period before)"


def digest_text(period: Period, label: str, lines: Sequence[DigestLine]) -> str:
    """The digest for a terminal: a title, then one line per flow, names aligned."""
    title = f"finops {period} digest: {label}"
    if not lines:
        return f"{title}: no spend\n"
    total = sum(line.spend_nanos for line in lines)
    width = max(len(line.flow) for line in lines)
    out = [f"{title}: top {plural(len(lines), 'flow')} spent ${format_usd(total, cents=True)}"]
    out += [f"  {line.flow.ljust(width)}  {_line(line)}" for line in lines]
    return "\n".join(out) + "\n"


def _flow_name(flow: str, public_url: str | None) -> str:
    name = fit(flow, 120)
    return link(dashboard_url(public_url, flow), name) if public_url else name


def digest_message(
    period: Period, label: str, lines: Sequence[DigestLine], *, public_url: str | None = None
) -> SlackMessage:
    """One short message: a line per flow (top 5), within Slack's limits. With ``public_url``
    (FINOPS_PUBLIC_URL) each flow links to its dashboard page, and the message to the overview."""
    title = f"finops {period} digest: {label}"
    overview = f"\n{link(dashboard_url(public_url), 'Open the finops dashboard')}" if public_url else ""
    if not lines:
        return SlackMessage(
            text=f"{title}: no spend",
            blocks=(header(title), section(f"No spend in this period.{overview}")),
        )
    rows = [f"*{_flow_name(line.flow, public_url)}*: {_line(line)}" for line in lines]
    total = sum(line.spend_nanos for line in lines)
    text = f"{title}: top {plural(len(lines), 'flow')} spent ${format_usd(total, cents=True)}"
    return SlackMessage(
        text=text[:3000],
        blocks=(
            header(title),
            section(clip_markup("\n".join(rows) + overview, SECTION_TEXT_MAX)),
            context("Details: `finops budgets status`, `finops outcomes --by flow`"),
        ),
    )
