"""Measure the figures the README quotes and save each as a JSON artifact.

    python scripts/make_artifacts.py detection_power   # 1000 cases per dtype, check_grads on 200
    python scripts/make_artifacts.py verifier_cost     # netcheck bench --verifier's default grid
    python scripts/make_artifacts.py bench             # netcheck bench's default grid

Each writes ``reports/artifacts/<name>.json``: the measuring function's record with the
command that made it (``"command"``) and when (``"created"``). The README's tables are
generated from these files by ``scripts/update_readme.py``, and a test checks that they
agree. Timings are only as quiet as the machine: run them when nothing else runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from netcheck._io import write_json_atomic
from netcheck.bench import step, suite, verifier_cost

ARTIFACTS = Path(__file__).resolve().parent.parent / "reports" / "artifacts"

MEASURES: dict[str, Callable[[], dict[str, Any]]] = {
    "detection_power": lambda: suite.detection_power(n_cases=1000, check_grads_cases=200),
    "verifier_cost": lambda: verifier_cost.run_verifier_bench("default", progress=True),
    "bench": lambda: step.run_bench("default", progress=True),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", choices=sorted(MEASURES))
    args = parser.parse_args(argv)
    for name in args.names:
        record = MEASURES[name]()
        record["command"] = f"python scripts/make_artifacts.py {name}"
        record["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        path = ARTIFACTS / f"{name}.json"
        write_json_atomic(path, record)
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
