"""Budget alerts as Slack Block Kit messages: read in five seconds, acted on at once. Pure: no I/O.

An alert answers, top to bottom: what happened to which flow (header), how bad
(spend against cap as a bar, dollars to the cent, where the day is heading and
when the cap falls), what drives it (top models and prompts), what to do now (a
command to paste, whether gateways are being denied) and whose it is (the owner,
mentioned). Every text respects Slack's limits (see :mod:`finops.notify.blockkit`),
so a 4,000-character flow name or eighty breached budgets still post.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

from finops.domain.budgets import Severity, percent_of, severity
from finops.domain.money import format_usd
from finops.notify.blockkit import (
    FALLBACK_TEXT_MAX,
    HEADER_TEXT_MAX,
    MESSAGE_BLOCKS_MAX,
    SECTION_TEXT_MAX,
    Block,
    clip_markup,
    context,
    escape,
    fit,
    header,
    link,
    section,
)

__all__ = [
    "SEVERITY_STYLE",
    "AlertMessage",
    "SlackMessage",
    "alert_severity",
    "dashboard_url",
    "render_alert",
    "render_digest",
]

AlertKind = Literal["threshold", "resolved", "fanout", "cost_per_success"]

#: Names longer than this are cut in lists, digests and notifications (the header gets what fits).
_NAME_MAX = 80
_TOP_N = 5
_BAR_CELLS = 10
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_MENTION = re.compile(r"^<@[UW][A-Z0-9]{2,}>$")
_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})(?: \((.+)\))?$")
_MONTH = re.compile(r"^(\d{4}-\d{2})(?: \((.*)\))?$")


@dataclass(frozen=True)
class AlertMessage:
    """Everything an alert says, as plain data (it is stored in the outbox as JSON)."""

    kind: AlertKind
    budget_key: str
    flow: str
    owner: str
    channel: str | None
    period: str
    spend_nanos: int
    cap_nanos: int
    threshold: Decimal | None
    projected_nanos: int | None = None
    cap_hit_at_local: str | None = None
    top_models: tuple[tuple[str, int], ...] = ()
    top_prompts: tuple[tuple[str, int], ...] = ()
    on_breach: Literal["alert", "block"] = "alert"
    detail: str | None = None


@dataclass(frozen=True)
class SlackMessage:
    """One ``chat.postMessage`` payload: fallback text (for notifications), blocks, optional metadata.

    ``metadata`` is Slack message metadata (``{"event_type": ..., "event_payload": {...}}``);
    delivery tags messages with it so an interrupted send can be found again.
    """

    text: str
    blocks: tuple[Block, ...]
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Period:
    noun: str  # "day", "month" or "" when the period label is not one finops writes
    zone: str | None
    month: str | None

    @property
    def adjective(self) -> str:
        return {"day": "daily", "month": "monthly"}.get(self.noun, "")

    @property
    def budget(self) -> str:
        return f"{self.adjective} budget" if self.adjective else "budget"


def _period(label: str) -> _Period:
    if m := _DAY.match(label):
        return _Period("day", m.group(2), None)
    if m := _MONTH.match(label):
        return _Period("month", None, m.group(1))
    return _Period("", None, None)


# ---------------------------------------------------------------- small formatters


def _usd(nanos: int) -> str:
    sign = "-" if nanos < 0 else ""
    return f"{sign}${format_usd(abs(nanos), cents=True)}"


def _bar(spend: int, cap: int) -> str:
    """``▓▓▓▓▓▓▓▓░░ 82%``: ten cells, full beyond 100%."""
    if cap <= 0:
        return "no cap"
    pct = percent_of(spend, cap)
    filled = min(_BAR_CELLS, pct // (100 // _BAR_CELLS))
    return "▓" * filled + "░" * (_BAR_CELLS - filled) + f" {pct}%"


def _pct(threshold: Decimal) -> str:
    value = threshold * 100
    if value == value.to_integral_value():
        return f"{int(value)}%"
    return f"{value.normalize():f}%"


def owner_user_id(owner: str) -> str | None:
    """The user id an owner written as one names (``U0123ABC`` or ``<@U0123ABC>``), else None."""
    owner = owner.strip()
    if _USER_ID.match(owner):
        return owner
    if _MENTION.match(owner):
        return owner[2:-1]
    return None


#: Said after an owner no Slack user was found for: the message went out, but notified nobody.
UNRESOLVED = "(not found in Slack: nobody was notified)"


def _user_id(owner: str, owner_ids: Mapping[str, str] | None) -> str | None:
    return owner_user_id(owner) or (owner_ids or {}).get(owner.strip())


def _mention(owner: str, owner_ids: Mapping[str, str] | None = None) -> str:
    """The owner as a mention that notifies (``<@U0123ABC>``): written as a user id, or found in
    Slack by delivery (``owner_ids``: owner as written -> user id); otherwise the name as text."""
    user_id = _user_id(owner, owner_ids)
    return f"<@{user_id}>" if user_id is not None else fit(owner.strip(), _NAME_MAX)


def _owner_note(owner: str, owner_ids: Mapping[str, str] | None) -> str:
    """`` (not found in Slack: nobody was notified)`` when the owner is not a Slack user we know."""
    return "" if _user_id(owner, owner_ids) is not None else f" {UNRESOLVED}"


def _code(text: str, limit: int = _NAME_MAX) -> str:
    """Inline code; a backtick inside would end the span early, so it becomes a quote."""
    return "`" + fit(text.replace("`", "'").replace("\n", " "), limit) + "`"


def _threshold(alert: AlertMessage) -> Decimal | None:
    if alert.threshold is not None:
        return alert.threshold
    return None if alert.cap_nanos <= 0 else Decimal(alert.spend_nanos) / Decimal(alert.cap_nanos)


def _breached(alert: AlertMessage) -> bool:
    t = _threshold(alert)
    return alert.spend_nanos >= alert.cap_nanos > 0 or (t is not None and t >= 1)


def _denying(alert: AlertMessage) -> bool:
    return alert.on_breach == "block" and alert.kind == "threshold" and _breached(alert)


#: How each severity looks: the emoji that starts the header and the word after it.
SEVERITY_STYLE: dict[Severity, tuple[str, str]] = {
    "info": (":information_source:", "Info"),
    "warning": (":warning:", "Warning"),
    "breach": (":rotating_light:", "Over budget"),
    "blocked": (":no_entry:", "Blocked"),
}


def alert_severity(alert: AlertMessage) -> Severity | None:
    """A threshold alert's severity (``finops.domain.budgets.severity``): from the threshold it
    crossed, and the cap counts as reached whenever spend is at or over it. None for other kinds."""
    if alert.kind != "threshold":
        return None
    level = _threshold(alert) or Decimal(0)
    if alert.spend_nanos >= alert.cap_nanos > 0:
        level = max(level, Decimal(1))
    return severity(level, on_breach=alert.on_breach)


def _emoji(alert: AlertMessage) -> str:
    if alert.kind == "resolved":
        return ":white_check_mark:"
    if alert.kind == "fanout":
        return ":twisted_rightwards_arrows:"
    if alert.kind == "cost_per_success":
        return ":money_with_wings:"
    level = alert_severity(alert)
    return SEVERITY_STYLE[level][0] if level else ":rotating_light:"


def _headline(alert: AlertMessage) -> str:
    """The emoji, and for a threshold alert the severity's word: ``:warning: Warning:``."""
    level = alert_severity(alert)
    return f"{_emoji(alert)} {SEVERITY_STYLE[level][1]}:" if level else _emoji(alert)


def _what(alert: AlertMessage, period: _Period) -> str:
    """What happened, after the flow name (no user text, so no escaping needed)."""
    t = _threshold(alert)
    if alert.kind == "resolved":
        return (
            f"dropped back below {_pct(t)} of its {period.budget}"
            if t
            else f"is back within its {period.budget}"
        )
    if alert.kind == "fanout":
        return "makes too many tool calls per request"
    if alert.kind == "cost_per_success":
        return "costs too much per successful outcome"
    return f"passed {_pct(t)} of its {period.budget}" if t is not None else f"is over its {period.budget}"


def _command(alert: AlertMessage, period: _Period) -> str:
    """A ``finops spend`` line to paste; an unwieldy flow name becomes a glob that still matches it."""
    flow = alert.flow
    if len(flow) > _NAME_MAX or any(c in flow for c in "`\n\r"):
        flow = re.sub(r"[`\n\r]", "?", flow[:60]) + "*"
    parts = ["finops", "spend", "--flow", shlex.quote(flow)]
    if period.noun == "month" and period.month:
        parts += ["--month", period.month]
    else:
        parts.append("--today")
        if period.zone and period.zone != "UTC":
            parts += ["--tz", shlex.quote(period.zone)]
    parts += ["--by", "model"]
    return "`" + escape(" ".join(parts)) + "`"


def _top(title: str, items: tuple[tuple[str, int], ...]) -> str:
    if not items:
        return ""
    lines = [f"*{title}*"]
    lines += [f"• {fit(name, _NAME_MAX)}  {_usd(nanos)}" for name, nanos in items[:_TOP_N]]
    if len(items) > _TOP_N:
        lines.append(f"_+{len(items) - _TOP_N} more_")
    return "\n".join(lines)


# ---------------------------------------------------------------- one alert


def _spend_text(alert: AlertMessage, period: _Period) -> str:
    lines: list[str] = []
    if alert.detail and alert.kind in ("fanout", "cost_per_success"):
        lines.append(":mag: " + fit(alert.detail, 1000))
    if alert.cap_nanos > 0:
        lines.append(
            f"`{_bar(alert.spend_nanos, alert.cap_nanos)}`  *{_usd(alert.spend_nanos)}* of "
            f"{_usd(alert.cap_nanos)} · {fit(alert.period, 200)}"
        )
    else:
        lines.append(f"*{_usd(alert.spend_nanos)}* spent · {fit(alert.period, 200)}")
    if alert.kind != "resolved":
        end = f"the end of the {period.noun}" if period.noun else "the end of the period"
        hit = fit(alert.cap_hit_at_local, 100) if alert.cap_hit_at_local else None
        over = alert.spend_nanos >= alert.cap_nanos > 0
        if alert.projected_nanos is not None:
            line = f"At this rate *{_usd(alert.projected_nanos)}* by {end}"
            if hit and not over:
                line += f"; the cap is hit around *{hit}*"
            lines.append(line + ".")
        elif hit and not over:
            lines.append(f"At this rate the cap is hit around *{hit}*.")
        if hit and over:
            lines.append(f"The cap was hit at *{hit}*.")
    return "\n".join(lines)


def _next_text(alert: AlertMessage, period: _Period, who: str) -> str:
    cmd = _command(alert, period)
    if alert.kind == "resolved":
        text = f"*No action needed*, {who}."
        t = _threshold(alert)
        if alert.on_breach == "block" and t is not None and t >= 1:
            text += " Gateways calling `finops check` are allowed again."
        return text
    if alert.kind == "fanout":
        return (
            f"*Next:* {who}, check the agent's tool loop: {cmd}\n"
            "The limit is `max_tool_calls_per_request` in the budget file."
        )
    if alert.kind == "cost_per_success":
        return (
            f"*Next:* {who}, compare models and prompts: {cmd}\n"
            "The limit is `max_cost_per_success_usd` in the budget file."
        )
    text = f"*Next:* {who}, see what drives it: {cmd}"
    if _denying(alert):
        text += (
            "\n:no_entry: `on_breach: block`: gateways calling `finops check` are now denied "
            "until the period resets or the cap is raised."
        )
    elif alert.on_breach == "block":
        text += "\n:warning: `on_breach: block`: at 100% gateways calling `finops check` will be denied."
    return text


def dashboard_url(public_url: str, flow: str | None = None) -> str:
    """The dashboard page of ``flow`` at ``public_url`` (FINOPS_PUBLIC_URL): ``<url>/flows/<flow,
    percent-encoded>`` (every character not safe in a path), or the overview for no flow."""
    base = public_url.rstrip("/")
    if flow is None:
        return base + "/"
    return f"{base}/flows/{quote(flow, safe='')}"


def _dashboard_link(alert: AlertMessage, public_url: str) -> str:
    """The flow's page; the overview for a budget that matches by a glob (``search-*``: many flows)."""
    if any(c in alert.flow for c in "*?"):
        return ":bar_chart: " + link(dashboard_url(public_url), "Open the finops dashboard")
    return ":bar_chart: " + link(
        dashboard_url(public_url, alert.flow), f"Open {fit(alert.flow, _NAME_MAX)} on the finops dashboard"
    )


def render_alert(
    alert: AlertMessage, owner_ids: Mapping[str, str] | None = None, *, public_url: str | None = None
) -> list[SlackMessage]:
    """One alert as Slack messages (always one today; a list so callers never assume it).

    ``owner_ids`` maps owners as written (``@dana``) to the Slack user ids delivery found.
    ``public_url`` (FINOPS_PUBLIC_URL): where the dashboard is; the message links to the flow's page.
    Every text is escaped and clipped, so the payload is valid whatever the names' length.
    """
    period = _period(alert.period)
    emoji, what = _headline(alert), _what(alert, period)
    who = _mention(alert.owner, owner_ids)
    room = HEADER_TEXT_MAX - len(emoji) - len(what) - 2
    blocks: list[Block] = [
        header(f"{emoji} {fit(alert.budget_key, max(room, 20))} {what}"),
        section(_spend_text(alert, period)),
    ]
    drivers = [f for f in (_top("Top models", alert.top_models), _top("Top prompts", alert.top_prompts)) if f]
    if drivers:
        blocks.append(section(fields=drivers))
    blocks.append(section(_next_text(alert, period, who)))
    if public_url:
        blocks.append(section(_dashboard_link(alert, public_url)))
    note = _owner_note(alert.owner, owner_ids)
    blocks.append(context(f"finops · budget {_code(alert.budget_key)} · owner {who}{note}"))
    text = f"{emoji} {fit(alert.budget_key, _NAME_MAX)} {what}"
    if alert.cap_nanos > 0:
        pct = percent_of(alert.spend_nanos, alert.cap_nanos)
        text += f": {_usd(alert.spend_nanos)} of {_usd(alert.cap_nanos)} ({pct}%)"
    text += f". {who}{note}"
    return [SlackMessage(text=clip_markup(text, FALLBACK_TEXT_MAX), blocks=tuple(blocks))]


# ---------------------------------------------------------------- many alerts


def _digest_line(alert: AlertMessage) -> str:
    period = _period(alert.period)
    t = _threshold(alert)
    scope = f" ({period.adjective})" if period.adjective else ""
    what = {
        "threshold": f"passed {_pct(t)}{scope}" if t is not None else f"over budget{scope}",
        "resolved": f"back below {_pct(t)}{scope}" if t is not None else f"back within budget{scope}",
        "fanout": "tool-call fan-out",
        "cost_per_success": "cost per success too high",
    }[alert.kind]
    line = f"{_emoji(alert)} *{fit(alert.budget_key, _NAME_MAX)}* {what}"
    if alert.cap_nanos > 0:
        bar = _bar(alert.spend_nanos, alert.cap_nanos)
        line += f" `{bar}` *{_usd(alert.spend_nanos)}* of {_usd(alert.cap_nanos)}"
    if _denying(alert):
        line += " · denying"
    line += f" · {_mention(alert.owner)}"
    if alert.detail and alert.kind in ("fanout", "cost_per_success"):
        line += "\n        " + fit(alert.detail, 300)
    return line


def _severity(alert: AlertMessage) -> tuple[bool, Decimal]:
    fraction = Decimal(alert.spend_nanos) / Decimal(alert.cap_nanos) if alert.cap_nanos > 0 else Decimal(0)
    return (alert.kind == "resolved", -fraction)


@dataclass
class _Chunk:
    """One section's worth of digest lines and the owners they mention."""

    text: str = ""
    owners: set[str] = field(default_factory=set)


def _pack(alerts: Sequence[AlertMessage], limit: int) -> list[_Chunk]:
    """Greedy: as many alert lines per section text as fit in ``limit`` characters."""
    chunks: list[_Chunk] = [_Chunk()]
    for alert in alerts:
        line = clip_markup(_digest_line(alert), limit)
        current = chunks[-1]
        if current.text and len(current.text) + 1 + len(line) > limit:
            current = _Chunk()
            chunks.append(current)
        current.text = f"{current.text}\n{line}" if current.text else line
        current.owners.add(_mention(alert.owner))
    return chunks


def render_digest(alerts: Sequence[AlertMessage], *, title: str) -> list[SlackMessage]:
    """Many alerts (say 80 breached budgets) in as few valid messages as possible, worst first.

    One line per alert, lines packed into sections of up to 3,000 characters, up to
    50 blocks per message; a second message is only started when the first is full.
    No alerts, no messages.
    """
    if not alerts:
        return []
    chunks = _pack(sorted(alerts, key=_severity), SECTION_TEXT_MAX)
    over = sum(1 for a in alerts if a.kind == "threshold" and _breached(a))
    resolved = sum(1 for a in alerts if a.kind == "resolved")
    summary = (
        f"{len(alerts)} budget alerts: {over} at or over the cap, {len(alerts) - over - resolved} warnings"
    )
    if resolved:
        summary += f", {resolved} back below"
    groups: list[list[_Chunk]] = []
    capacity = 0
    for chunk in chunks:
        if not groups or len(groups[-1]) >= capacity:
            groups.append([])
            # every message starts with a header; the first also has the summary
            capacity = MESSAGE_BLOCKS_MAX - (2 if len(groups) == 1 else 1)
        groups[-1].append(chunk)
    messages: list[SlackMessage] = []
    for i, group in enumerate(groups, start=1):
        suffix = f" ({i}/{len(groups)})" if len(groups) > 1 else ""
        blocks: list[Block] = [header(fit(title, HEADER_TEXT_MAX - len(suffix)) + suffix)]
        if i == 1:
            blocks.append(context(summary))
        blocks += [section(chunk.text) for chunk in group]
        owners = sorted(set().union(*(chunk.owners for chunk in group)))
        fallback = f"{fit(title, 200)}{suffix} — {summary}. Owners: {', '.join(owners)}"
        messages.append(SlackMessage(text=clip_markup(fallback, FALLBACK_TEXT_MAX), blocks=tuple(blocks)))
    return messages
