"""Demo tool: fails FLAKY_FAILURE_RATE of its calls, drawn from a generator seeded with FLAKY_SEED."""

import os
import random

_rng = random.Random(int(os.environ.get("FLAKY_SEED", "7")))


def run(data):
    rate = float(data.get("failure_rate", os.environ.get("FLAKY_FAILURE_RATE", "0.5")))
    if _rng.random() < rate:
        raise RuntimeError(f"flaky failure (rate {rate})")
    return {"echo": data.get("value")}
