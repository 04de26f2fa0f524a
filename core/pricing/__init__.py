"""Pricing: what a call costs.

``rates`` (a price version's rates and tiers, a call's counts), ``validation`` (names and
counts checked), ``lookup`` (the lookup chain: exact, short, alias, default, env, estimate),
``formula`` (the cost formula in exact pico-dollars), ``provider_usage`` and ``providers``
(each provider's usage shapes and names), ``versions`` (the price table read), ``edits``
(the form, price files, retiring a model), ``seeding`` (catalog and environment),
``files`` (price files read), ``catalog/`` (the shipped table and the genai-prices package).
"""
