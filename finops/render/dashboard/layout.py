"""The shell every dashboard page shares, and the pieces pages are built from.

Pages carry no script and no inline style (the Content-Security-Policy allows neither): the one
stylesheet is ``static/dashboard.css``, served by the daemon. Money is written with
:func:`money`: the visible text is dollars to the cent, and a ``<data value>`` holds the exact
decimal string ``finops spend --format json`` prints, so scripts and tests read exact numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from urllib.parse import quote, urlencode

from finops.domain.dashboard import Light
from finops.domain.money import format_usd
from finops.render.report_data import usd

__all__ = [
    "LIGHT_WORDS",
    "NAV",
    "esc",
    "flow_href",
    "money",
    "page",
    "query_href",
    "table",
    "tile",
]

#: The pages in the navigation: (path, label, key). ``active`` names the key.
NAV = (
    ("/", "Overview", "overview"),
    ("/spend", "Spend", "spend"),
    ("/outcomes", "Outcomes", "outcomes"),
    ("/prompts", "Prompts", "prompts"),
)

#: What each light means in words: colour is never the only sign.
LIGHT_WORDS: dict[Light, str] = {"green": "on track", "yellow": "at risk", "red": "over"}


def esc(value: object) -> str:
    """Text or an attribute value from data, escaped (quotes too): names come from usage records."""
    return escape(str(value), quote=True)


def money(nanos: int | None, *, unknown: str = "—") -> str:
    """Dollars to the cent, with the exact amount in ``<data value>``; ``None`` (unpriced) as a dash."""
    if nanos is None:
        return f'<span class="unknown" title="cost unknown: unpriced usage">{esc(unknown)}</span>'
    return f'<data class="usd" value="{format_usd(nanos)}">{esc(usd(nanos))}</data>'


def flow_href(flow: str) -> str:
    """The flow page's path (every character of the name that is not safe in a URL escaped)."""
    return "/flows/" + quote(flow, safe="")


def query_href(path: str, params: Iterable[tuple[str, str]]) -> str:
    query = urlencode([(k, v) for k, v in params if v != ""])
    return f"{path}?{query}" if query else path


def tile(
    *, key: str, light: Light, title: str, body: str, href: str | None = None, label: str | None = None
) -> str:
    """One tile of a band: ``data-tile`` names it (``budget:<name>``, ``health:<what>``) and
    ``data-state`` is its light; the light is also written in words."""
    heading = esc(title)
    if href is not None:
        heading = f'<a href="{esc(href)}">{heading}</a>'
    word = label or LIGHT_WORDS[light]
    return (
        f'<article class="tile {light}" data-tile="{esc(key)}" data-state="{light}">'
        f'<h3>{heading}</h3><p class="light"><span class="dot" aria-hidden="true"></span>{esc(word)}</p>'
        f"{body}</article>"
    )


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    caption: str,
    numeric: Sequence[int] = (),
    foot: Sequence[str] | None = None,
    name: str = "",
) -> str:
    """A table of already-escaped cells; columns in ``numeric`` align right. Wide tables scroll
    inside their own box, never the page."""
    right = set(numeric)

    def cells(values: Sequence[str], tag: str) -> str:
        return "".join(
            f"<{tag}{' class=num' if i in right else ''}>{v}</{tag}>" for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    tfoot = f"<tfoot><tr>{cells(foot, 'th')}</tr></tfoot>" if foot else ""
    attr = f' data-table="{esc(name)}"' if name else ""
    return (
        f'<div class="table-wrap" tabindex="0" role="region" aria-label="{esc(caption)}"><table{attr}>'
        f"<caption>{esc(caption)}</caption><thead><tr>{cells([esc(h) for h in headers], 'th')}</tr></thead>"
        f"<tbody>{body}</tbody>{tfoot}</table></div>"
    )


def page(
    *,
    title: str,
    active: str,
    body: str,
    generated: str,
    refresh_s: int | None = None,
    login: bool = True,
) -> str:
    """A whole page. ``refresh_s`` reloads it (a ``<meta>`` refresh: no script needed);
    ``generated`` says when the numbers were read; ``login``: show the sign-out form."""
    nav = "".join(
        f'<li><a href="{href}"{" aria-current=page" if key == active else ""}>{esc(label)}</a></li>'
        for href, label, key in NAV
    )
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    out = (
        '<form method="post" action="/logout"><button type="submit">Sign out</button></form>' if login else ""
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{refresh}<title>{esc(title)} · finops</title>"
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<link rel="icon" href="data:,">'
        "</head><body>"
        '<a class="skip" href="#main">Skip to content</a>'
        '<header class="top"><a class="brand" href="/">finops</a>'
        f'<nav aria-label="Pages"><ul>{nav}</ul></nav>{out}</header>'
        f'<main id="main" tabindex="-1"><h1>{esc(title)}</h1>{body}</main>'
        f"<footer><p>Read at {esc(generated)}."
        f"{f' This page refreshes every {refresh_s} s.' if refresh_s else ''}</p></footer>"
        "</body></html>\n"
    )
