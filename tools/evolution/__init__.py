"""Evolution: a model rewrites a failing tool, and nothing it wrote runs unreviewed.

The prompt and its context, the validation stages run in the sandbox, proposals with
review and promotion (approve, reject, rollback), and generating a new tool from a spec or as the
local replacement of an MCP tool. What evolution remembers of past decisions (memory), how it is
doing (stats), and proposing on its own when a tool's score falls (auto, off by default).
"""

from tools.evolution.evolve import evolve_tool, revalidate, summarize
from tools.evolution.generate import generate_replacement, generate_tool_from_spec
from tools.evolution.memory import repeats_warning
from tools.evolution.review import approve, cancel, check_scope, get_proposal, list_proposals, reject, rollback
from tools.evolution.stats import STATS_COLUMNS, STATS_TITLE, StatsView, evolution_stats, stats_rows

__all__ = ["STATS_COLUMNS", "STATS_TITLE", "StatsView", "approve", "cancel", "check_scope", "evolution_stats", "evolve_tool",
           "generate_replacement", "generate_tool_from_spec", "get_proposal", "list_proposals", "reject", "repeats_warning",
           "revalidate", "rollback", "stats_rows", "summarize"]
