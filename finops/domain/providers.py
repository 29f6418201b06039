"""Provider names: OpenTelemetry ``gen_ai.provider.name`` values, everyday aliases, inference."""

from __future__ import annotations

import re

__all__ = ["canonical_provider", "infer_provider", "origin_provider"]

# Canonical names follow OpenTelemetry's gen_ai.provider.name well-known values.
_ALIASES: dict[str, str] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "claude": "anthropic",
    "google": "gcp.gemini",
    "gemini": "gcp.gemini",
    "google_ai_studio": "gcp.gemini",
    "gcp.gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "gcp.vertex_ai": "gcp.vertex_ai",
    "gcp.gen_ai": "gcp.gen_ai",
    "bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "aws.bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure.ai.openai": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "azure.ai.inference": "azure.ai.inference",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "mistral_ai": "mistral_ai",
    "codestral": "mistral_ai",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "x_ai": "x_ai",
    "x.ai": "x_ai",
    "grok": "x_ai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "groq": "groq",
    "perplexity": "perplexity",
    "watsonx": "ibm.watsonx.ai",
    "ibm.watsonx.ai": "ibm.watsonx.ai",
}

# Where a model was made, from its name; first match wins.
_ORIGINS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), provider)
    for pattern, provider in (
        (r"^(gpt-|o1|o3|o4|chatgpt-|text-embedding-|davinci|babbage|codex-|computer-use)", "openai"),
        (r"^claude", "anthropic"),
        (r"^(gemini|gemma|learnlm)", "gcp.gemini"),
        (r"^(mistral|mixtral|codestral|ministral|magistral|devstral|pixtral|open-mistral)", "mistral_ai"),
        (r"^deepseek", "deepseek"),
        (r"^grok", "x_ai"),
        (r"^(command|c4ai)", "cohere"),
    )
)


def canonical_provider(name: str) -> str:
    """``'Bedrock'`` -> ``'aws.bedrock'``; LiteLLM's ``vertex_ai-anthropic_models`` -> ``gcp.vertex_ai``.

    Unknown names are kept (lower-cased): a provider finops does not know is still a provider.
    """
    known = _ALIASES.get(name)
    if known is not None:
        return known
    key = name.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    if key.startswith("vertex_ai"):
        return "gcp.vertex_ai"
    if key.startswith("bedrock"):
        return "aws.bedrock"
    return key


def origin_provider(model: str) -> str | None:
    """The company whose model this is, from the bare model name (``claude-...`` -> anthropic)."""
    name = model.strip().lower()
    for pattern, provider in _ORIGINS:
        if pattern.search(name):
            return provider
    return None


def infer_provider(model: str) -> str | None:
    """The provider of a record that names none, from prefixes (``bedrock/``, ``anthropic.``) or the model."""
    name = model.strip().lower()
    if "/" in name:
        prefix, rest = name.split("/", 1)
        if prefix in _ALIASES or prefix.startswith(("vertex_ai", "bedrock")):
            return canonical_provider(prefix)
        name = rest
    if re.match(r"^([a-z]{2}\.)?(anthropic|amazon|meta|cohere|ai21|mistral)\.", name):
        return "aws.bedrock"
    return origin_provider(name)
