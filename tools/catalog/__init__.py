"""The catalog: what tools exist and what each one is.

Manifests on disk and their model, discovery of the catalog roots and evolved versions,
the background loader with per-tool status, the tools MCP servers publish into it
(`imported`: their place beside the local ones, collisions), the manifest's own tests, its
free text and the hidden characters in it (`texts`), and hot reload (`watcher`, installed by
the runtime by name). Other rooms import from here.
"""

from tools.catalog.discovery import DEMO_DIR, roots_for
from tools.catalog.entry import Resolution, StatusChange, ToolEntry, last_loaded_version
from tools.catalog.imported import IMPORTED
from tools.catalog.loader import Catalog
from tools.catalog.manifest import (
    MAX_OUTPUT_BYTES_CEILING,
    Manifest,
    code_file,
    count_nodes,
    load_manifest,
    manifest_data_from_bytes,
    parse_manifest_text,
    read_manifest_data,
    validate_manifest,
)
from tools.catalog.testing import check_case, run_manifest_tests
from tools.catalog.texts import hidden_text, map_schema_text, schema_hidden

__all__ = ["DEMO_DIR", "IMPORTED", "MAX_OUTPUT_BYTES_CEILING",
           "Catalog", "Manifest", "Resolution", "StatusChange", "ToolEntry", "check_case", "code_file", "count_nodes",
           "hidden_text", "last_loaded_version", "load_manifest", "manifest_data_from_bytes", "map_schema_text",
           "parse_manifest_text", "read_manifest_data", "roots_for", "run_manifest_tests", "schema_hidden",
           "validate_manifest"]
