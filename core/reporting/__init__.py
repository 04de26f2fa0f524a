"""Reporting: the figures read back, from roll-ups and the log's indexes, never by loading calls.

``aggregates`` (totals and breakdowns by period, provider, model, user, project), ``logs``
(the usage log, its pages and CSV export), ``filters`` (the filter model of the pages),
``forecast`` (month-end projection).
"""
