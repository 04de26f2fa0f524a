"""``track(..., enforce=True)``: the check a tracked client runs before each request is sent.

The estimate: the prompt's tokens at the input rate plus ``max_tokens`` (or
``max_completion_tokens`` / ``max_output_tokens``; else the model's limit from the
genai-prices catalog, its context window) at the output rate, priced by the lookup chain as a
call. Prompt tokens are counted as one per three bytes of the request's UTF-8 JSON (messages,
input, system, tools): above a real tokenizer's count for English text, so the estimate errs
towards denying, and no tokenizer download is needed.
"""

from __future__ import annotations

import json
import math
import uuid
from decimal import Decimal
from functools import lru_cache

from sqlalchemy import Engine

from core.limits import service
from core.recording.hooks import Outgoing

PROMPT_KEYS = ("messages", "input", "prompt", "system", "instructions", "tools", "contents")
OUTPUT_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "max_new_tokens")
BYTES_PER_TOKEN = 3


class SpendLimitExceeded(Exception):
    """A tracked request the enforced budgets deny; it was not sent. Names the budget and what is left."""

    def __init__(self, decision: service.Decision) -> None:
        denied = decision.denied_by
        assert denied is not None
        self.decision = decision
        self.budget = denied.budget
        self.subject = denied.subject
        self.remaining = denied.remaining
        self.estimate = decision.estimate
        who = f" for {denied.subject}" if denied.subject else ""
        super().__init__(
            f"spend limit: budget {denied.budget!r}{who} has {service.money_text(denied.remaining)} USD left "
            f"(of {service.money_text(denied.amount)}, until {denied.period_end:%Y-%m-%d %H:%M} UTC); "
            f"this request is estimated at {service.money_text(decision.estimate)} USD and was not sent"
        )


def prompt_tokens(kwargs: object) -> int:
    """An upper estimate of the prompt's tokens: one per three bytes of its JSON text."""
    parts = {k: kwargs[k] for k in PROMPT_KEYS if isinstance(kwargs, dict) and k in kwargs}
    text = json.dumps(parts, ensure_ascii=False, default=str, separators=(",", ":"))
    return math.ceil(len(text.encode()) / BYTES_PER_TOKEN)


@lru_cache(maxsize=1024)
def catalog_limit(provider: str, model: str) -> int | None:
    """The model's token limit in the genai-prices catalog (its context window), if it knows the model."""
    try:
        from genai_prices.data_snapshot import get_snapshot

        _provider, info = get_snapshot().find_provider_model(model, None, provider, None)
    except (LookupError, ValueError, ImportError):
        return None
    return info.context_window


def output_tokens(outgoing: Outgoing, prompt: int) -> int:
    for key in OUTPUT_KEYS:
        value = outgoing.kwargs.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    if outgoing.model is None:
        raise service.LimitError("model: a tracked request with enforce=True must name its model")
    limit = catalog_limit(outgoing.provider, outgoing.model)
    if limit is None:
        raise service.LimitError(
            f"max_tokens: needed to estimate a request to {outgoing.provider}/{outgoing.model}, "
            "whose output limit the catalog does not know"
        )
    return max(limit - prompt, 0)


def estimate(engine: Engine, outgoing: Outgoing) -> Decimal:
    prompt = prompt_tokens(dict(outgoing.kwargs))
    return service.price_tokens(engine, outgoing.provider, outgoing.model, prompt, output_tokens(outgoing, prompt))


def before_send(engine: Engine, outgoing: Outgoing) -> str | None:
    """Check (and, but for streams, which are not recorded, hold) the estimate; raise on a denial."""
    cost = estimate(engine, outgoing)
    hold = None if outgoing.stream else f"spendboard-hold-{uuid.uuid4().hex}"
    request = service.validate(
        engine,
        user=outgoing.user,
        project=outgoing.project,
        provider=outgoing.provider,
        model=outgoing.model,
        estimated_cost=cost,
        reserve=hold is not None,
        request_id=hold,
    )
    decision = service.decide(engine, request)
    if not decision.allowed:
        raise SpendLimitExceeded(decision)
    return hold if decision.held else None


def release(engine: Engine, hold: str) -> None:
    service.release(engine, hold)
