"""Network ingestion: API keys, and the payloads calls arrive in over HTTP.

``keys`` makes and checks API keys; ``calls`` reads the JSON API's bodies,
``otlp`` OpenTelemetry traces (GenAI semantic conventions, OpenInference),
``litellm`` LiteLLM's StandardLoggingPayload; ``rejections`` keeps what was refused;
``body`` reads a request body in bounded memory. The tables are in ``core.storage.key_tables``;
the HTTP routes live in ``routes/``.
"""
