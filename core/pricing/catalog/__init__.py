"""Price catalogs: the rows shipped in ``catalog.csv`` and the ``genai-prices`` package's catalog.

``from core.pricing.catalog import CatalogPrice, load_catalog`` keeps working; the package
catalog lives in :mod:`core.pricing.catalog.package` (conversion) and :mod:`core.pricing.catalog.sync`
(``prices sync``), imported lazily so this package stays cheap to import.
"""

from core.pricing.catalog.shipped import CATALOG_PATH, CatalogPrice, load_catalog

__all__ = ["CATALOG_PATH", "CatalogPrice", "load_catalog"]
