"""Reconciliation: the provider's own cost and usage reports against the computed bill."""
