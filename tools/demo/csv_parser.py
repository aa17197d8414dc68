"""Demo tool: CSV text in, records out. Deliberately CSV-only: JSON input fails."""

import csv
import io
import json
import sys


def main() -> int:
    request = json.load(sys.stdin)
    text = request["text"]
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        print("JSONDecodeError-like input: this looks like JSON, not CSV", file=sys.stderr)
        return 1
    reader = csv.DictReader(io.StringIO(text), delimiter=request.get("delimiter", ","))
    rows = [dict(row) for row in reader]
    json.dump({"columns": reader.fieldnames or [], "rows": rows}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
