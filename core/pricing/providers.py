"""Provider names: the one place that knows which names mean the same provider.

Calls keep the provider name they were sent with (lower-cased); the price lookup
tries the name itself, then the other names of the same provider, so a call sent
as ``gemini`` finds a price stored under the genai-prices id ``google``.
"""

from __future__ import annotations

# canonical id (as the genai-prices package names it) -> names users already use
ALIASES: dict[str, tuple[str, ...]] = {
    "google": ("gemini", "google-gla", "google-vertex", "vertex_ai", "vertex-ai", "vertexai", "google-ai"),
    "x-ai": ("xai", "grok"),
    "together": ("together-ai", "together_ai", "togetherai"),
    "aws": ("bedrock", "aws-bedrock", "amazon-bedrock"),
    "azure": ("azure-openai", "azure_openai"),
    "mistral": ("mistralai", "mistral-ai"),
    "fireworks": ("fireworks-ai", "fireworks_ai"),
    "openrouter": ("open-router",),
    "huggingface": ("hf", "huggingface-hub", "hugging-face"),
    "cohere": ("cohere-ai",),
    "perplexity": ("perplexity-ai",),
    "moonshotai": ("moonshot", "moonshot-ai", "kimi"),
    "voyageai": ("voyage", "voyage-ai"),
    "zhipuai": ("zhipu", "zhipu-ai", "bigmodel"),
    "zai": ("z-ai", "z.ai"),
    "cloudflare": ("workers-ai", "cloudflare-workers-ai"),
}

_CANONICAL: dict[str, str] = {}
for _canonical, _names in ALIASES.items():
    _CANONICAL[_canonical] = _canonical
    for _name in _names:
        _CANONICAL[_name] = _canonical


def canonical_provider(name: str) -> str:
    """``gemini`` -> ``google``; a name with no alias is returned lower-cased as it is."""
    cleaned = name.strip().lower()
    return _CANONICAL.get(cleaned, cleaned)


def equivalent_providers(name: str) -> tuple[str, ...]:
    """The name itself first, then every other name of the same provider."""
    cleaned = name.strip().lower()
    canonical = _CANONICAL.get(cleaned)
    if canonical is None:
        return (cleaned,)
    others = [canonical, *ALIASES.get(canonical, ())]
    return (cleaned, *(n for n in others if n != cleaned))
