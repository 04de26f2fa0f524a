"""Anomalies: each key's hourly spend judged against the same hour of the week in the four weeks before.

The rule (DESIGN.md, Release 3, "Anomalies") lives in :mod:`core.anomalies.rule` as pure functions
over ``Decimal`` and UTC hours; reading the roll-ups and writing the outbox come on top of it.
"""
