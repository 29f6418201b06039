"""Prompt fingerprints and previews (finops.domain.prompts), token counts (finops.usecases.audit.tokens)."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tiktoken
import tiktoken.model

from finops.domain.prompts import normalise_prompt, prompt_fingerprint, prompt_key, redacted_preview
from finops.usecases.audit.tokens import TokenCounter, encoding_for_model, estimate_tokens
from tests.conftest import LITELLM_CATALOG, needs_litellm_catalog, needs_tiktoken

REPO = Path(__file__).resolve().parents[1]

# --- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write to dana.k+ops@example.co.uk now", "Write to <email> now"),
        ("See https://docs.example.com/a?b=c@d.com. Then go", "See <url>. Then go"),
        ("or www.example.org/path, ok", "or <url>, ok"),
        ("request req_01HVZ3K9 failed", "request <id> failed"),
        ("trace 4bf92f3577b34da6a3ce929d0e0e4736", "trace <id>"),
        ("uuid 123e4567-e89b-12d3-a456-426614174000 done", "uuid <id> done"),
        ("key sk-proj-AbCdEfGh12345678ijKLmnOP+/qrST9 end", "key sk-proj-<id> end"),
        ("on 2026-11-03 at 10:15:00", "on <date> at <time>"),
        ("at 2026-11-03T10:15:00Z", "at <date>T<time>"),
        ("due 03/11/2026 or 3.11.2026", "due <date> or <date>"),
        ("due Nov 3, 2026 or 3 November 2026", "due <date> or <date>"),
        ("Tuesday, November 3rd 2026 at 9:30 pm", "<date> at <time>"),
        ("pay $12.50 of 1,234,567.89 or 1.234,56 €", "pay <n> of <n> or <n>"),
        (
            "order #48213, 3rd try, -5 degrees, 50% off, 1500ms",
            "order #<n>, <n> try, <n> degrees, <n>% off, <n>ms",
        ),
        ("  many \n\n spaces\tand  tabs ", "many spaces and tabs"),
    ],
)
def test_template_values_are_masked(text: str, expected: str) -> None:
    assert normalise_prompt(text) == expected


def test_digits_inside_names_are_kept() -> None:
    assert normalise_prompt("use gpt-4o on x86 with an H100, pin v1.2.3, 5G and 3D") == (
        "use gpt-4o on x86 with an H100, pin v1.2.3, 5G and 3D"
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "Customer ana@shop.io (order 1234, total $99.90) asks about delivery on 2026-11-03.",
            "Customer bo.li@mail.example.com (order 98, total $5) asks about delivery on 2027-01-15.",
        ),
        (
            "Summarise ticket req_01HVZ3K9 opened Nov 3, 2026 at 10:15 by user 4bf92f3577b34da6",
            "Summarise ticket req_7QX2M4PA9Z opened Dec 24, 2025 at 9:05 by user 0a1b2c3d4e5f6071",
        ),
        (
            "Refund 1,250.00 EUR to https://pay.example.com/r/991 before 03/11/2026",
            "Refund 7.5 EUR to http://x.io/refund?id=3 before 12/31/2027",
        ),
    ],
)
def test_prompts_from_one_template_share_a_fingerprint(a: str, b: str) -> None:
    assert prompt_fingerprint(a) == prompt_fingerprint(b)


def test_different_wording_gives_a_different_fingerprint() -> None:
    a = "Summarise ticket 1234 for the customer."
    b = "Translate ticket 1234 for the customer."
    assert prompt_fingerprint(a) != prompt_fingerprint(b)


def test_fingerprint_is_fp_and_16_hex_chars() -> None:
    fp = prompt_fingerprint("Hello 42")
    assert re.fullmatch(r"fp:[0-9a-f]{16}", fp)
    assert fp == prompt_fingerprint("Hello   7")


def test_normalising_twice_is_normalising_once() -> None:
    atoms = [
        *"0123456789aZxé.,:;-+/_@$€'’ <>T()#%=\n\t",
        *("<n>", "<id>", "<date>", "Nov", "May", "Tuesday, ", "3rd", "pm", "ms", "GB", "http://", "www."),
        *("a@b.co", "req_", "2026-11-03", "03/11/2026", "10:15:00Z", "+01:00", "==", "v1.2.3", "gpt-4o"),
        *("AbCdEfGh12345678+/AbCd", "4bf92f3577b34da6a3ce929d0e0e4736", "1,234.5", "1.234,56", "−"),
    ]
    rng = random.Random(20261103)
    for _ in range(5000):
        text = "".join(rng.choice(atoms) for _ in range(rng.randint(1, 20)))
        once = normalise_prompt(text)
        assert normalise_prompt(once) == once, text


@pytest.mark.parametrize("text", ["a" * 1_000_000, "aB3+" * 250_000, "a@" * 500_000, "1." * 500_000])
def test_a_megabyte_normalises_in_linear_time(text: str) -> None:
    start = time.perf_counter()
    normalise_prompt(text)
    assert time.perf_counter() - start < 5  # quadratic backtracking would take hours


# --- prompt keys and previews --------------------------------------------------------------


def test_sender_prompt_id_wins_over_text() -> None:
    assert prompt_key("  support/answer@v3 ", "Hello 42") == "support/answer@v3"


def test_text_fingerprint_when_prompt_id_is_missing_or_blank() -> None:
    assert prompt_key(None, "Hello 42") == prompt_fingerprint("Hello 42")
    assert prompt_key("  ", "Hello 42") == prompt_fingerprint("Hello 7")


def test_no_prompt_key_without_id_or_text() -> None:
    assert prompt_key(None, None) is None
    assert prompt_key("", " \n") is None


def test_preview_masks_an_email() -> None:
    preview = redacted_preview("Reply to dana@example.com about invoice 77 by 2026-11-03")
    assert "dana" not in preview and "example.com" not in preview
    assert preview == "Reply to <email> about invoice <n> by <date>"


def test_long_preview_is_cut_with_an_ellipsis() -> None:
    preview = redacted_preview("word " * 200, limit=50)
    assert len(preview) <= 50 and preview.endswith("…")
    assert redacted_preview("short", limit=50) == "short"


def test_preview_cut_never_leaks_part_of_an_email() -> None:
    text = "x" * 30 + " firstname.lastname@example.com"
    assert "firstname" not in redacted_preview(text, limit=40)


def test_preview_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        redacted_preview("text", limit=0)


# --- encodings -----------------------------------------------------------------------------


def tiktoken_answer(model: str) -> str | None:
    try:
        return tiktoken.encoding_name_for_model(model)
    except KeyError:
        return None


def litellm_openai_chat_models() -> list[str]:
    catalog = json.loads(LITELLM_CATALOG.read_text())
    return sorted(
        name
        for name, entry in catalog.items()
        if isinstance(entry, dict)
        and entry.get("litellm_provider") == "openai"
        and entry.get("mode") == "chat"
    )


# tiktoken's "ft:gpt-4" prefix catches fine-tuned gpt-4.1 too (as it caught ft:gpt-4o before 0.9).
TIKTOKEN_MISMAPS = re.compile(r"ft:gpt-4\.1")


@needs_litellm_catalog
def test_encoding_agrees_with_tiktoken_for_litellm_openai_chat_models() -> None:
    models = litellm_openai_chat_models()
    answered = [m for m in models if tiktoken_answer(m) and not TIKTOKEN_MISMAPS.match(m)]
    assert len(answered) > 50
    assert {m: encoding_for_model(m) for m in answered} == {m: tiktoken_answer(m) for m in answered}


def test_encoding_agrees_with_tiktokens_own_tables() -> None:
    names = list(tiktoken.model.MODEL_TO_ENCODING)
    for prefix in tiktoken.model.MODEL_PREFIX_TO_ENCODING:
        suffix = ":my-org::abc123" if prefix.startswith("ft:") else "2025-01-01"
        names.append(prefix + ("" if prefix.endswith("-") or suffix[0] == ":" else "-") + suffix)
    assert {n: encoding_for_model(n) for n in names} == {n: tiktoken_answer(n) for n in names}


@needs_litellm_catalog
def test_fine_tuned_gpt_4_1_uses_its_base_models_encoding() -> None:
    mismapped = [m for m in litellm_openai_chat_models() if TIKTOKEN_MISMAPS.match(m)]
    assert mismapped
    for model in mismapped:
        assert encoding_for_model(model) == "o200k_base" == encoding_for_model(model[3:])


@pytest.mark.parametrize(
    "model", ["gpt-6-astra", "gpt-6.1-sol", "gpt-audio-mini", "gpt-realtime", "ft:o4-mini-2025-04-16", "o4"]
)
def test_newer_openai_names_use_o200k(model: str) -> None:
    assert encoding_for_model(model) == "o200k_base"


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("openai/gpt-4o-mini", "o200k_base"),
        ("azure/gpt-4.1", "o200k_base"),
        ("azure/gpt-35-turbo", "cl100k_base"),
        ("openrouter/openai/gpt-4-turbo", "cl100k_base"),
        ("GPT-4o", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::9xYz", "o200k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("groq/openai/gpt-oss-120b", "o200k_harmony"),
    ],
)
def test_provider_prefixes_and_fine_tune_suffixes_are_stripped(model: str, expected: str) -> None:
    assert encoding_for_model(model) == expected


@pytest.mark.parametrize(
    "model",
    [
        "claude-sonnet-4-5",
        "anthropic/claude-3-5-haiku",
        "gemini-2.5-pro",
        "mistral-large-latest",
        "llama-3.1-70b",
    ],
)
def test_other_providers_have_no_encoding(model: str) -> None:
    assert encoding_for_model(model) is None


# --- token counts ----------------------------------------------------------------------------

TEXTS = [
    "Hello, world!",
    "Grüße aus Köln: naïve café, 東京の天気は晴れです。 Привет, мир! 🎉👩‍💻",
    "def f(x):\n    return x ** 2  # <|endoftext|> is just text here\n",
    "The quick brown fox jumps over the lazy dog. 12,345 tokens? " * 333 + "é" * 20,
]


@needs_tiktoken
@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4.1-mini", "gpt-5", "o3-mini", "gpt-4", "gpt-3.5-turbo"])
@pytest.mark.parametrize("text", TEXTS, ids=["ascii", "non-ascii", "special-token", "20k-chars"])
def test_openai_counts_equal_tiktoken(model: str, text: str) -> None:
    counted = TokenCounter().count(text, model)
    encoding = tiktoken.encoding_name_for_model(model)
    assert counted.tokens == len(tiktoken.get_encoding(encoding).encode_ordinary(text))
    assert (counted.estimated, counted.encoding) == (False, encoding)


def test_the_long_text_is_twenty_thousand_characters() -> None:
    assert len(TEXTS[-1]) >= 20_000


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gemini-2.5-flash"])
@pytest.mark.parametrize("text", TEXTS, ids=["ascii", "non-ascii", "special-token", "20k-chars"])
def test_other_providers_get_the_byte_estimate(model: str, text: str) -> None:
    counted = TokenCounter().count(text, model)
    assert counted.tokens == max(1, math.ceil(len(text.encode("utf-8")) / 4))
    assert (counted.estimated, counted.encoding) == (True, None)


def test_estimate_of_empty_and_tiny_texts() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert TokenCounter().count("", "gpt-4o").tokens == 0


@needs_tiktoken
def test_a_lone_surrogate_does_not_break_counting() -> None:
    text = "bad \ud800 json"
    assert TokenCounter().count(text, "claude-sonnet-4-5").tokens == estimate_tokens(text) == 3
    assert TokenCounter().count(text, "gpt-4o").estimated is False


@needs_tiktoken
def test_no_warning_when_every_encoding_loads() -> None:
    counter = TokenCounter()
    counter.count("hi", "gpt-4o")
    counter.count("hi", "gpt-4")
    assert counter.unavailable == set() and counter.warning() is None


MISSING_FILES = """
import json, tiktoken.load
from finops.usecases.audit.tokens import TokenCounter

attempts = []
real_read_file = tiktoken.load.read_file

def read_file(blobpath):
    attempts.append(blobpath)
    return real_read_file(blobpath)

tiktoken.load.read_file = read_file
counter = TokenCounter()
counts = [counter.count("hello world, " * 10, "gpt-4o") for _ in range(100)]
print(json.dumps({
    "estimated": all(c.estimated for c in counts),
    "tokens": counts[0].tokens,
    "unavailable": sorted(counter.unavailable),
    "attempts": len(attempts),
    "warning": counter.warning(),
}))
"""


def test_missing_encoding_files_give_estimates_and_one_warning(tmp_path: Path) -> None:
    """No cached files and no way to download them: tiktoken fails, the program goes on."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"no_proxy", "all_proxy"}}
    dead_proxy = "http://127.0.0.1:9"  # the discard port: connections are refused at once
    env.update(TIKTOKEN_CACHE_DIR=str(tmp_path), HTTPS_PROXY=dead_proxy, https_proxy=dead_proxy)
    done = subprocess.run(
        [sys.executable, "-c", MISSING_FILES], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["estimated"] is True
    assert result["tokens"] == estimate_tokens("hello world, " * 10)
    assert result["unavailable"] == ["o200k_base"]
    assert result["attempts"] == 1  # remembered, not retried for each record
    assert "TIKTOKEN_CACHE_DIR" in result["warning"] and "o200k_base" in result["warning"]
    assert list(tmp_path.iterdir()) == []
