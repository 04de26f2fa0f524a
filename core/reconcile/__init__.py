"""Reconciliation: the provider's own bill (OpenAI's and Anthropic's cost and usage reports) held to the computed one.

Fetched or imported report pages become exact, per-day lines (``lines``); the provider clients
(``openai``, ``anthropic``) follow every page; ``files`` reads the same pages saved by hand.
"""
