"""Block Kit primitives that cannot produce a payload Slack rejects.

Slack answers ``invalid_blocks`` (and posts nothing) when one text is a
character too long, so every builder here clips to Slack's documented limits.
User-provided strings (flow, model and prompt names, free text) go through
:func:`fit`, which escapes ``&``, ``<`` and ``>`` the way Slack requires (an
unescaped ``<!channel>`` in a flow name would page a whole channel) and
truncates *before* escaping, so an entity such as ``&amp;`` is never cut in half.
Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CONTEXT_ELEMENTS_MAX",
    "ELLIPSIS",
    "FALLBACK_TEXT_MAX",
    "FIELDS_MAX",
    "FIELD_TEXT_MAX",
    "HEADER_TEXT_MAX",
    "MESSAGE_BLOCKS_MAX",
    "SECTION_TEXT_MAX",
    "Block",
    "clip_markup",
    "context",
    "divider",
    "escape",
    "fit",
    "header",
    "link",
    "section",
]

#: Slack's documented limits (https://docs.slack.dev/reference/block-kit/blocks).
HEADER_TEXT_MAX = 150
SECTION_TEXT_MAX = 3000
FIELDS_MAX = 10
FIELD_TEXT_MAX = 2000
CONTEXT_ELEMENTS_MAX = 10
MESSAGE_BLOCKS_MAX = 50
#: Slack truncates ``text`` at 40,000 characters; a notification longer than this helps nobody.
FALLBACK_TEXT_MAX = 3000
ELLIPSIS = "…"

Block = dict[str, Any]

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    """Escape the three characters Slack treats as control characters (and only those)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int) -> str:
    """``text`` escaped for Slack, at most ``limit`` characters once escaped, ending in "…" if cut.

    Truncation happens on the raw string so an entity is never split.
    """
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    budget = limit - len(ELLIPSIS)
    out: list[str] = []
    used = 0
    for ch in text:
        piece = _ENTITIES.get(ch, ch)
        if used + len(piece) > budget:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out) + ELLIPSIS


def link(url: str, text: str) -> str:
    """A mrkdwn link. ``url`` holds none of ``<``, ``>``, ``|`` (percent-encode them); ``text`` is
    already escaped (from :func:`fit`)."""
    if any(c in url for c in "<>| "):
        raise ValueError("a link's URL must not hold <, >, | or a space: percent-encode them")
    return f"<{url}|{text}>"


def clip_markup(text: str, limit: int) -> str:
    """Last line of defence for composed mrkdwn: cut to ``limit`` without splitting ``&…;`` or ``<…>``.

    Builders budget their parts so this rarely cuts; when it does, the message
    stays valid rather than being rejected whole.
    """
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    amp, semi = cut.rfind("&"), cut.rfind(";")
    if amp > semi:
        cut = cut[:amp]
    lt, gt = cut.rfind("<"), cut.rfind(">")
    if lt > gt:
        cut = cut[:lt]
    if cut.count("`") % 2:  # an unclosed code span would swallow the ellipsis
        cut = cut[: cut.rfind("`")]
    return cut + ELLIPSIS


def header(text: str) -> Block:
    """A header block; ``text`` is already escaped (it is clipped to 150 characters again here)."""
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": clip_markup(text, HEADER_TEXT_MAX), "emoji": True},
    }


def section(text: str | None = None, *, fields: list[str] | tuple[str, ...] = ()) -> Block:
    """A mrkdwn section: text clipped to 3,000 characters, at most 10 fields of 2,000 each."""
    block: Block = {"type": "section"}
    if text:
        block["text"] = {"type": "mrkdwn", "text": clip_markup(text, SECTION_TEXT_MAX)}
    if fields:
        block["fields"] = [
            {"type": "mrkdwn", "text": clip_markup(f, FIELD_TEXT_MAX)} for f in fields[:FIELDS_MAX] if f
        ]
    return block


def context(*texts: str) -> Block:
    """A context block (small grey text) of up to 10 mrkdwn elements."""
    return {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": clip_markup(t, SECTION_TEXT_MAX)}
            for t in texts[:CONTEXT_ELEMENTS_MAX]
            if t
        ],
    }


def divider() -> Block:
    return {"type": "divider"}
