"""Budgets and alerts: per period and scope, one signed webhook per threshold crossed.

``models`` declares the tables, ``periods`` turns a budget's calendar period into a
UTC range, ``spend`` sums what is stored, ``detect`` writes crossings to the outbox,
``delivery`` signs and sends them, ``service`` holds the use cases the CLI and the
Budgets page call.
"""
