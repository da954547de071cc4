#!/usr/bin/env bash
# One short check of netcheck on a GPU (a few minutes): the test suite once on the device,
# then the large benchmark grid (widths up to 8192, float32 and bfloat16) saved as JSON,
# then a report rendered from it with the device's own numbers.
#
#   scripts/gpu_check.sh [OUT_DIR]        # default OUT_DIR: reports/example-gpu
#
# Needs a CUDA build of jaxlib (pip install -U "jax[cuda12]"). Exits non-zero if the tests
# fail or no GPU is visible; missed performance goals are reported, not fatal.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-reports/example-gpu}"
PYTHON="${PYTHON:-python}"

platform="$("$PYTHON" -c 'import jax; print(jax.devices()[0].platform)')"
if [[ "$platform" != "gpu" && "$platform" != "cuda" ]]; then
    echo "gpu_check: JAX sees no GPU (platform: $platform)" >&2
    exit 2
fi
"$PYTHON" -c 'import jax; d = jax.devices()[0]; print("device:", d.device_kind, "| jax", jax.__version__)'

# 1. The tests, once, on the GPU (slow-marked tests included; -x stops at the first failure).
#    Four workers share the GPU, so none may grab most of its memory up front.
XLA_PYTHON_CLIENT_PREALLOCATE=false "$PYTHON" -m pytest -q -x -n 4 -p no:cacheprovider

# 2. The large grid: manual vs jax.grad vs the roofline, compiled memory, FLOP/s.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
"$PYTHON" -c 'import sys; from netcheck.cli import main; sys.exit(main(sys.argv[1:]))' \
    bench --large --json "$scratch/bench-large.json" --no-progress

# 3. A report with the GPU's benchmark beside the verification and training stages
#    (written atomically into OUT_DIR; its results.json holds the whole benchmark record).
"$PYTHON" - "$OUT_DIR" "$scratch/bench-large.json" <<'PY'
import json, sys
from pathlib import Path
from netcheck import report
out = Path(sys.argv[1])
bench = json.loads(Path(sys.argv[2]).read_text())
stages = report.default_stages()
stages["bench"] = lambda progress: bench
settings = {**report.REPORT_SETTINGS, "bench": {"grid": "large"}}
record = report.run_report(stages, name=out.name, settings=settings)
report.write_report(record, out)
print("wrote", out / "index.html")
PY
