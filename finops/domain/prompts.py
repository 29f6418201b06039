"""Prompt identity for the token audit (docs/design.md §2: ``prompt_id`` and ``prompt``).

A sender that names its prompts (``prompt_id: "support/answer@v3"``) is trusted.
Otherwise the prompt text is *normalised*, so that every call made from one
template is one prompt: the values a template fills in (emails, URLs, ids,
dates, times, numbers) are replaced by placeholders, and the fingerprint of
what is left names the template. The same masking makes the optional preview
safe to keep: it never holds the personal data the raw text carried.

Rules run in a fixed order, most specific first: a URL before the email in its
query string, an email or id before its digits become ``<n>``. Each rule may
start only where a token starts (a lookbehind), so a megabyte of base64 costs
linear time, not quadratic. Normalising is idempotent: placeholders hold no
digits, ``@`` or ``://``, and where a later rule's placeholder could change what
an earlier rule sees (``a@b.io+c@d.io``, a base64 run cut by ``<n>``) the earlier
rule is written to decide the same either way; tests/test_prompts.py checks this
on thousands of random strings.

Pure: no I/O, no clock, no environment.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["normalise_prompt", "prompt_fingerprint", "prompt_key", "redacted_preview"]

_WS = re.compile(r"\s+")

# Ends before trailing punctuation, so "see https://x.io/a." keeps its full stop.
_URL = re.compile(
    r"(?:(?:https?|ftp|wss?)://|www\.)[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]}]",
    re.IGNORECASE,
)

# Emails glued together (a@b.io+c@d.io) are one match, so a second pass finds no new start.
_DOMAIN = r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_EMAIL = re.compile(rf"(?<![\w.%+-])[\w.%+-]+@{_DOMAIN}(?:[\w.%+-]*@{_DOMAIN})*(?![\w-])")

_UUID = re.compile(
    r"(?<![\w-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-])"
)

# Standard base64 (+ and /): API keys, inline blobs. Mixed case and digits, and a stretch
# of 16+ without + or /, which tells it from a path such as src/Components/Button2/index.
# (Each test holds for any piece of a run it rejects: a second pass rejects the pieces too.)
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{24,}(?:={1,2}|(?![A-Za-z0-9+/=]))")
_BASE64_SPLIT = re.compile(r"[+/]")

# Word tokens with both a letter and a digit: req_01HVZ3K9, hex trace ids, A1234567.
_ALNUM = re.compile(r"(?<!\w)(?=[A-Za-z0-9_]*[A-Za-z])(?=[A-Za-z0-9_]*[0-9])[A-Za-z0-9_]+(?!\w)")

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_WEEKDAY = r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*\.?,?\s+)?"
_ORD = r"(?:st|nd|rd|th)"
_DATE = re.compile(
    "|".join(
        (
            # year first: 2026-11-03, 2026/11/03
            r"(?<![\w.:/-])[0-9]{4}([-/])[0-9]{1,2}\1[0-9]{1,2}(?![0-9/])",
            # day or month first: 03/11/2026, 11-03-26, 3.11.2026 (dots only with a 4-digit year)
            r"(?<![\w.:/-])[0-9]{1,2}([-/])[0-9]{1,2}\2(?:[0-9]{4}|[0-9]{2})(?![\w/])",
            r"(?<![\w.:/-])[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{4}(?![\w.])",
            # Nov 3, 2026 / Tuesday, November 3rd 2026 / Nov 3
            rf"(?<!\w){_WEEKDAY}{_MONTH}\s+[0-9]{{1,2}}{_ORD}?(?:,?\s+[0-9]{{4}})?(?!\w)",
            # 3 Nov 2026 / 3rd of November, 2026
            rf"(?<![\w.]){_WEEKDAY}[0-9]{{1,2}}{_ORD}?\s+(?:of\s+)?{_MONTH}(?:,?\s+[0-9]{{4}})?(?!\w)",
            # November 2026
            rf"(?<!\w){_MONTH}\s+[0-9]{{4}}(?!\w)",
        )
    )
)

# 10:15, 10:15:00.123Z, 10:15+01:00, 9:30 pm, 9pm; also the time of an ISO datetime (<date>T).
_TIME = re.compile(
    r"(?:(?<![\w.:])|(?<=<date>T))[0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
    r"(?:\s?[AaPp]\.?[Mm]\.?(?!\w)|Z(?!\w)|[+-][0-9]{2}:?[0-9]{2}(?![0-9:]))?(?![0-9:])"
    r"|(?<![\w.:])[0-9]{1,2}\s?[AaPp]\.?[Mm]\.?(?!\w)"
)

# Ints, decimals, 1,234,567.89 / 1.234,56 / 1_000 / 1'000, with a sign, a currency symbol
# before or after, or an ordinal suffix (3rd). A unit glued after stays (<n>ms, <n>GB).
# Not a digit run inside a word (x86, H100), after a dotted prefix (the 2 of v1.2; also
# after a placeholder, <n>.5, so a second pass agrees) or before letters that are no unit
# (gpt-4o, 3D, 5G): those are names.
_CURRENCY = r"[$€£¥₹₽₩]"
_UNIT = r"(?:ms|s|sec|secs|min|mins|h|hr|hrs|d|k|K|M|B|x|px|pt|em|kb|KB|mb|MB|gb|GB|tb|TB|kg|g|km|m|cm|mm)"
_NUMBER = re.compile(
    rf"(?<!\w)(?<![\w>]\.)(?:[-+−](?=[0-9]|{_CURRENCY}))?(?:{_CURRENCY}\s?)?[0-9]+(?:[.,_'’][0-9]+)*"
    rf"(?:{_ORD}(?!\w)|\s?{_CURRENCY}(?![0-9])|(?={_UNIT}?(?!\w)))"
)
_QUANTITY = re.compile(rf"[0-9]+{_UNIT}")  # 1500ms, 4096px: left to _NUMBER, not an id


def _mask_alnum(match: re.Match[str]) -> str:
    """``<id>`` for a letters-and-digits token that is long or has 4+ digits, not a quantity."""
    token = match.group()
    if _QUANTITY.fullmatch(token):
        return token
    if len(token) >= 8 or sum(c.isdigit() for c in token) >= 4:
        return "<id>"
    return token


def _mask_base64(match: re.Match[str]) -> str:
    text = match.group()
    if (
        max(len(part) for part in _BASE64_SPLIT.split(text)) >= 16
        and any(c.isupper() for c in text)
        and any(c.islower() for c in text)
        and any(c.isdigit() for c in text)
    ):
        return "<id>"
    return text


def normalise_prompt(text: str) -> str:
    """The template behind a prompt: values masked, whitespace collapsed, stripped.

    URLs -> ``<url>``, emails -> ``<email>``, UUIDs, base64 and letter+digit tokens of
    8+ characters or 4+ digits -> ``<id>``, dates -> ``<date>``, times -> ``<time>``,
    numbers (separators, sign, currency symbol, ordinal) -> ``<n>``. Deterministic and
    idempotent: ``normalise_prompt(normalise_prompt(t)) == normalise_prompt(t)``.
    """
    out = _WS.sub(" ", text).strip()
    out = _URL.sub("<url>", out)
    out = _EMAIL.sub("<email>", out)
    out = _UUID.sub("<id>", out)
    out = _BASE64.sub(_mask_base64, out)
    out = _DATE.sub("<date>", out)
    out = _TIME.sub("<time>", out)
    out = _ALNUM.sub(_mask_alnum, out)
    return _NUMBER.sub("<n>", out)


def prompt_fingerprint(text: str) -> str:
    """``fp:`` + 16 hex chars naming the template of ``text`` (see ``normalise_prompt``).

    64 bits keep the key short in rollup tables; two templates of one tenant collide
    with negligible odds (the birthday bound is near 4 billion templates).
    """
    normalised = normalise_prompt(text).encode("utf-8", "surrogatepass")
    return "fp:" + hashlib.blake2b(normalised, digest_size=8).hexdigest()


def prompt_key(prompt_id: str | None, text: str | None) -> str | None:
    """What the audit groups a call by: the sender's ``prompt_id``, else the text's fingerprint.

    The sender's name wins because it survives rewording (``support/answer@v3``). Blank
    values count as absent; None when there is neither (the call has no prompt).
    """
    if prompt_id is not None and prompt_id.strip():
        return prompt_id.strip()
    if text is not None and text.strip():
        return prompt_fingerprint(text)
    return None


def redacted_preview(text: str, limit: int = 400) -> str:
    """The normalised text, cut to ``limit`` characters (the last one "…" when cut).

    Masked before cutting, so an email cut in half at the limit cannot leak its start.

    Raises:
        ValueError: ``limit`` is below 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    out = normalise_prompt(text)
    if len(out) <= limit:
        return out
    return out[: limit - 1].rstrip() + "…"
