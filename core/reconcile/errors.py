"""The one error of reconciliation: a provider's report that could not be had or read."""

from __future__ import annotations


class ReconcileError(Exception):
    """A refused key, a server that did not answer, a page or file not of the documented shape.

    Its text is one line naming the provider and the cause, as the command prints it.
    """

    def __init__(self, provider: str, cause: str) -> None:
        self.provider = provider
        self.cause = " ".join(cause.split())  # one line, whatever a server put in its message
        super().__init__(provider, self.cause)

    def __str__(self) -> str:
        return f"{self.provider}: {self.cause}"
