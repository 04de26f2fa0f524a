"""The dashboard's pages, listed once: the navigation (``app.py``) and the server's route table read them.

Page addresses are lower case; the server sends ``/Calculator`` to ``/calculator`` (a person types
either), so every page has one address.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    script: str  # relative to the app's folder
    title: str
    icon: str
    url_path: str  # "" for the default page (the Overview, at /)


PAGES = (
    PageSpec("app_pages/overview.py", "Overview", ":material/dashboard:", ""),
    PageSpec("app_pages/logs.py", "Usage logs", ":material/receipt_long:", "logs"),
    PageSpec("app_pages/budgets.py", "Budgets", ":material/savings:", "budgets"),
    PageSpec("app_pages/reconciliation.py", "Reconciliation", ":material/balance:", "reconciliation"),
    PageSpec("app_pages/customers.py", "Customers", ":material/groups:", "customers"),
    PageSpec("app_pages/pricing.py", "Pricing", ":material/sell:", "pricing"),
    PageSpec("app_pages/calculator.py", "Calculator", ":material/calculate:", "calculator"),
    PageSpec("app_pages/keys.py", "API keys", ":material/key:", "keys"),
)
URL_PATHS = frozenset(p.url_path for p in PAGES if p.url_path)


def canonical_path(path: str) -> str | None:
    """``/calculator`` for ``/Calculator`` or ``/CALCULATOR/``; ``None`` when the path is a page's own or no page's."""
    name = path.strip("/")
    if name.lower() in URL_PATHS and path != f"/{name.lower()}":
        return f"/{name.lower()}"
    return None
