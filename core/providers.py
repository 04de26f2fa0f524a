"""Provider names: the ``genai-prices`` provider ids are Spendboard's names; aliases map
the names users already send (``gemini`` is ``google``, ``xai`` is ``x-ai``, ...).

(Created on the catalog branch with the lead's API, ``canonical_provider`` and ``ALIASES``;
the lead merges it with theirs.)
"""

from __future__ import annotations

# alias -> the package's provider id. HuggingFace is not an alias of anything: its seed
# rows and environment variables keep their meaning (the package's routed HuggingFace
# providers are the separate ids ``huggingface_groq``, ``huggingface_together``, ...).
ALIASES: dict[str, str] = {
    "gemini": "google",
    "google-gemini": "google",
    "google-vertex": "google",
    "vertex": "google",
    "vertex-ai": "google",
    "vertex_ai": "google",
    "xai": "x-ai",
    "x.ai": "x-ai",
    "together-ai": "together",
    "together_ai": "together",
    "togetherai": "together",
    "fireworks-ai": "fireworks",
    "fireworks_ai": "fireworks",
    "bedrock": "aws",
    "aws-bedrock": "aws",
    "amazon-bedrock": "aws",
    "azure-openai": "azure",
    "azure_openai": "azure",
    "azure-ai": "azure",
    "mistralai": "mistral",
    "mistral-ai": "mistral",
    "moonshot": "moonshotai",
    "moonshot-ai": "moonshotai",
    "voyage": "voyageai",
    "voyage-ai": "voyageai",
    "zhipu": "zhipuai",
    "z-ai": "zai",
    "z.ai": "zai",
    "copilot": "github-copilot",
    "cloudflare-workers-ai": "cloudflare",
    "workers-ai": "cloudflare",
    "perplexity-ai": "perplexity",
    "cohere-ai": "cohere",
    "deepseek-ai": "deepseek",
}


def canonical_provider(name: str) -> str:
    """The provider name prices are stored under: trimmed, lower-cased, aliases resolved."""
    key = name.strip().lower()
    return ALIASES.get(key, key)
