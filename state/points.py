"""Point ids of the semantic memory's collections: uuid5 of what each point is about.

One owner for them, so a tool's, a failure's and a past success's point are named the same way by
every module and every process (re-indexing is idempotent; a Qdrant server shared by several
nodes holds one point per thing).
"""

from __future__ import annotations

import re
import uuid

NAMESPACE = uuid.UUID("6f1c2a4e-5b0d-4c1e-9a7f-2d3b4c5e6f70")


def normalise_scenario(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def tool_point_id(tool_id: str, version: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"tool:{tool_id}/{version}"))


def failure_point_id(tool_id: str, version: str, scenario: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"failure:{tool_id}/{version}/{normalise_scenario(scenario)}"))


def usage_point_id(tool_id: str, version: str, scenario: str) -> str:
    """A scenario a tool version succeeded on (state/usage.py)."""
    return str(uuid.uuid5(NAMESPACE, f"usage:{tool_id}/{version}/{normalise_scenario(scenario)}"))
