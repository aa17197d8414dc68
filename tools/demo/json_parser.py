"""Demo tool: JSON text in, parsed data out (served by a warm worker)."""

import json

KINDS = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}


def run(data):
    parsed = json.loads(data["text"])
    rows = parsed if isinstance(parsed, list) else [parsed]
    return {"data": parsed, "type": KINDS[type(parsed)], "rows": rows}
