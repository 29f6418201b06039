"""Token counts of prompt text: exact with tiktoken for OpenAI models, an estimate otherwise.

The audit counts the tokens of a prompt's text (docs/design.md §2: ``prompt`` is used
to count tokens, then dropped) to find bloated prompts. For OpenAI models the
tokenizer is public, so the count is exact; other providers' tokenizers are not,
and bytes / 4 is the usual estimate. An exact count is of the text alone: the
chat format adds a few tokens per message that no caller of this module sees.

An adapter, not domain code: tiktoken reads its encoding files from
``TIKTOKEN_CACHE_DIR`` (or downloads them once). Where it cannot, counts fall
back to estimates, marked ``estimated=True``, and ``TokenCounter.warning()``
says once what the operator can do about it.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import tiktoken
import tiktoken.model

__all__ = ["TokenCount", "TokenCounter", "encoding_for_model", "estimate_tokens"]

_O200K = "o200k_base"
_CL100K = "cl100k_base"
# o200k_base plus the chat-format special tokens of gpt-oss; encode_ordinary counts the same.
_HARMONY = "o200k_harmony"

# gpt-4, gpt-4o, gpt-4.1, gpt-5.2, gpt-6 ... followed by the end or a variant (-mini, -2025-04-14).
_GPT_NUMBERED = re.compile(r"gpt-(\d+)(?:\.(\d+))?(o)?(?:$|-)")
# OpenAI's named GPT families since gpt-4o (gpt-audio, gpt-realtime, gpt-image ...), all o200k.
_GPT_NAMED = re.compile(r"gpt-[a-z]")
# Models named gpt-* that OpenAI did not make, with tokenizers of their own.
_GPT_NOT_OPENAI = re.compile(r"gpt-(?:j|neo|neox|sw3|bigcode|engineer)(?:$|[-_.])")
_REASONING = re.compile(r"o\d+(?:$|-)")  # o1, o3-mini, o4-mini-2025-04-16
_O200K_PREFIXES = ("chatgpt-", "codex-", "computer-use-")
_CL100K_PREFIXES = ("gpt-35-turbo", "text-embedding-3-", "text-embedding-ada-002")


def _base_name(model: str) -> str:
    """The OpenAI model name inside a routed, hosted or fine-tuned name.

    ``openai/gpt-4o`` and ``azure/gpt-4o`` -> ``gpt-4o``; ``ft:gpt-4o-mini-2024-07-18:org::id``
    -> ``gpt-4o-mini-2024-07-18``; ``gpt-oss:20b`` (Ollama) -> ``gpt-oss``;
    ``openai.gpt-oss-120b-1:0`` (Bedrock) -> ``gpt-oss-120b-1``.
    """
    name = model.strip().lower().rsplit("/", 1)[-1]
    name = name.removeprefix("ft:").split(":", 1)[0]
    return name.removeprefix("openai.")


@functools.lru_cache(maxsize=1024)
def encoding_for_model(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model; None for other providers' models.

    Our own rules first, so that new OpenAI names (gpt-5.5, gpt-6-*, gpt-audio) count
    exactly before tiktoken's table lists them and fine-tuned names follow their base
    model; then tiktoken's own table for legacy names (davinci-002, text-davinci-003).
    Where tiktoken answers, the answer is the same, with one exception on purpose:
    tiktoken maps ``ft:gpt-4.1-*`` to cl100k_base (its ``ft:gpt-4`` prefix shadows
    it), but a fine-tuned gpt-4.1 tokenizes as gpt-4.1 does, with o200k_base.
    """
    name = _base_name(model)
    if name.startswith("gpt-oss"):
        return _HARMONY
    if name.startswith(_CL100K_PREFIXES):
        return _CL100K
    if name.startswith(_O200K_PREFIXES) or _REASONING.match(name):
        return _O200K
    numbered = _GPT_NUMBERED.match(name)
    if numbered:
        major, minor, omni = int(numbered[1]), numbered[2], numbered[3]
        if major >= 5 or (major == 4 and (omni or minor)):
            return _O200K
        if major == 4 or (major == 3 and minor == "5"):
            return _CL100K
    elif _GPT_NAMED.match(name) and not _GPT_NOT_OPENAI.match(name):
        return _O200K
    try:
        return tiktoken.model.encoding_name_for_model(name)
    except KeyError:
        return None


def estimate_tokens(text: str) -> int:
    """UTF-8 bytes / 4, rounded up (at least 1 for non-empty text): the usual rule of thumb.

    Counts bytes rather than characters so that non-Latin text, which costs more
    tokens per character, is not underestimated. A lone surrogate counts as 3 bytes.
    """
    if not text:
        return 0
    return max(1, math.ceil(len(text.encode("utf-8", "surrogatepass")) / 4))


@dataclass(frozen=True)
class TokenCount:
    """Tokens of one text; ``encoding`` is the tiktoken encoding used, None for an estimate."""

    tokens: int
    estimated: bool
    encoding: str | None


class TokenCounter:
    """Counts tokens for many records, loading each tiktoken encoding at most once.

    A failed load (no network and no cache, a corrupt cached file) is remembered in
    ``unavailable`` and not retried, so an offline ingest of a million records tries
    once, not a million times; those records get estimates. Not locked: two threads
    may load one encoding twice, which is harmless.
    """

    def __init__(self) -> None:
        self.unavailable: set[str] = set()
        self._loaded: dict[str, tiktoken.Encoding] = {}

    def count(self, text: str, model: str) -> TokenCount:
        """Tokens of ``text`` as ``model`` would read it; exact only with a loaded encoding.

        Special-token strings in the text (``<|endoftext|>``) count as ordinary text,
        never raise: prompts are data, not instructions to the tokenizer.
        """
        name = encoding_for_model(model)
        encoding = self._encoding(name) if name is not None else None
        if encoding is None:
            return TokenCount(tokens=estimate_tokens(text), estimated=True, encoding=None)
        return TokenCount(tokens=len(encoding.encode_ordinary(text)), estimated=False, encoding=name)

    def _encoding(self, name: str) -> tiktoken.Encoding | None:
        loaded = self._loaded.get(name)
        if loaded is not None or name in self.unavailable:
            return loaded
        try:
            loaded = tiktoken.get_encoding(name)
        except Exception:  # requests, OSError, ValueError (hash mismatch), ImportError: all "not here"
            self.unavailable.add(name)
            return None
        self._loaded[name] = loaded
        return loaded

    def warning(self) -> str | None:
        """One sentence for the operator when some counts are estimates for want of tiktoken files."""
        if not self.unavailable:
            return None
        names = ", ".join(sorted(self.unavailable))
        return (
            f"token counts for OpenAI models are estimates: tiktoken could not load {names} "
            "(set TIKTOKEN_CACHE_DIR to a folder with the encoding files, "
            "or allow it to download them once)"
        )
