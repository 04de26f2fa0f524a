"""Notifications: the outbox of events and their signed webhook delivery (Standard Webhooks)."""
