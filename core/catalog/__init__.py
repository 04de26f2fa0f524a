"""Price catalogs: the rows shipped in ``catalog.csv`` and the ``genai-prices`` package's catalog.

``from core.catalog import CatalogPrice, load_catalog`` keeps working; the package
catalog lives in :mod:`core.catalog.package` (conversion) and :mod:`core.catalog.sync`
(``prices sync``), imported lazily so this package stays cheap to import.
"""

from core.catalog.shipped import CATALOG_PATH, CatalogPrice, load_catalog

__all__ = ["CATALOG_PATH", "CatalogPrice", "load_catalog"]
