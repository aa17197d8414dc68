"""Demo tool: calls a translation service (TRANSLATOR_URL). Offline, it fails."""

import json
import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    request = json.load(sys.stdin)
    url = os.environ.get("TRANSLATOR_URL", "http://127.0.0.1:9/translate")
    body = json.dumps({"q": request["text"], "target": request["target"]}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=3) as resp:
            json.dump({"translation": json.load(resp)["translation"]}, sys.stdout)
    except (urllib.error.URLError, OSError) as exc:
        print(f"translation service unreachable at {url}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
