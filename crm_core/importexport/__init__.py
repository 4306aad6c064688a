"""Bulk import and export of customers, products and orders (CSV / JSON Lines).

The formats and rules are documented in FORMATS.md next to this file.
"""

from crm_core.importexport.schemas import (
    Entity,
    ExportResult,
    FileFormat,
    ImportConfig,
    ImportProgress,
    ImportRequest,
    ImportResult,
    Issue,
)
from crm_core.importexport.service import (
    ExportService,
    ImportRejected,
    ImportService,
    guess_format,
    run_import,
)

__all__ = [
    "Entity",
    "ExportResult",
    "ExportService",
    "FileFormat",
    "ImportConfig",
    "ImportProgress",
    "ImportRejected",
    "ImportRequest",
    "ImportResult",
    "ImportService",
    "Issue",
    "guess_format",
    "run_import",
]
