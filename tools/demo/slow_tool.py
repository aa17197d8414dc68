"""Demo tool: sleeps, then answers (its manifest timeout is shorter than the default sleep)."""

import json
import sys
import time

request = json.load(sys.stdin)
time.sleep(float(request.get("seconds", 5)))
json.dump({"slept": request.get("seconds", 5)}, sys.stdout)
