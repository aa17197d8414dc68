"""Recovery: every failure recorded and acted on.

The failure ledger and its demotion rules, circuit breakers, the operator's controls
(disable, reset, force a circuit), semantic candidate selection, and resilient calls that
fall back through similar tools.
"""

from tools.recovery import controls
from tools.recovery.controls import force_circuit, remove_tag, reset_score, set_disabled
from tools.recovery.ledger import mark_tool_failure, tracker_for
from tools.recovery.resilient import ResilientCallError, call_tool_resilient
from tools.recovery.selection import SelectionSettings, select_candidates

__all__ = ["ResilientCallError", "SelectionSettings", "call_tool_resilient", "controls", "force_circuit", "mark_tool_failure",
           "remove_tag", "reset_score", "select_candidates", "set_disabled", "tracker_for"]
