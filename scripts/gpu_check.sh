#!/usr/bin/env bash
# netcheck on one NVIDIA GPU, in one run of about 8 minutes: everything the repository's GPU
# figures come from, written into OUT_DIR (committed as reports/example-gpu/).
#
#   scripts/gpu_check.sh [OUT_DIR]              # default OUT_DIR: reports/example-gpu
#   scripts/gpu_check.sh --dry-run [OUT_DIR]    # the same steps on the CPU, on small shapes
#
# Steps (each under its own time limit; a failed or timed-out step is recorded in
# OUT_DIR/steps.tsv and the next one still runs; the exit code is 1 if any step failed):
#   1. environment.txt: nvidia-smi, JAX's environment (versions, CUDA, devices).
#   2. The full report (`netcheck report --full`): the 216-case suite, the kill matrix, 1000
#      detection-power cases per dtype at JAX's default matmul precision (TF32 for float32),
#      the bench and verifier-cost stages and the training comparison; OUT_DIR/index.html.
#   3. The gradient step on the large grid (widths up to 8192, batch up to 4096): float32 at
#      the default precision (TF32) and bfloat16, then float32 at `highest`, as JSON.
#   4. The verifier's cost as multiples of one gradient step (`netcheck bench --verifier`).
#   5. The trainer where dispatch dominates: train_bench at batches 10, 128 and 1024.
#
# --dry-run checks the script itself on a machine without a GPU: the same commands with the
# same flags, plus grid overrides that shrink every shape (a few minutes on two cores).
# Needs a CUDA build of jaxlib (pip install -U "jax[cuda12]") for the real run.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
if [[ "${1:-}" == "--dry-run" ]]; then
    DRY_RUN=1
    shift
fi
OUT_DIR="${1:-reports/example-gpu}"
PYTHON="${PYTHON:-python}"
NETCHECK=("$PYTHON" -m netcheck)

platform="$("$PYTHON" -c 'import jax; print(jax.devices()[0].platform)')"
if [[ $DRY_RUN == 0 && "$platform" != "gpu" && "$platform" != "cuda" ]]; then
    echo "gpu_check: JAX sees no GPU (platform: $platform); use --dry-run to check the script" >&2
    exit 2
fi

# Shrinking overrides for the dry run, appended to the same command lines.
if [[ $DRY_RUN == 1 ]]; then
    # Detection power at 1000 cases per dtype takes most of an hour on two cores; the dry
    # run leaves it out (scripts/make_artifacts.py detection_power runs it on the CPU).
    REPORT_SHRINK=(--stages verification,bench,training --bench-grid quick)
    LARGE_SHRINK=(--widths 64,128 --depths 2 --batches 16 --rounds 3)
    VERIFIER_SHRINK=(--quick)
    TRAIN_SHRINK=(--n-examples 2000 --rounds 3 --epochs 3)
    LIMIT_SCALE=3  # a CPU is slower; the limits are there to stop a hung step, not to judge
else
    REPORT_SHRINK=() LARGE_SHRINK=() VERIFIER_SHRINK=() TRAIN_SHRINK=()
    LIMIT_SCALE=1
fi

# The report replaces OUT_DIR atomically, so it runs first; the other files go in after it.
mkdir -p "$(dirname "$OUT_DIR")"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
printf 'step\texit\tseconds\n' >"$scratch/steps.tsv"
failed=0

# run_step NAME LIMIT_S COMMAND...: run under a time limit, log to $scratch/NAME.log.
run_step() {
    local name="$1" limit="$(($2 * LIMIT_SCALE))"
    shift 2
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout --signal=INT --kill-after=20 "$limit" "$@" >"$scratch/$name.log" 2>&1
    local code=$?
    printf '%s\t%s\t%s\n' "$name" "$code" "$((SECONDS - start))" >>"$scratch/steps.tsv"
    tail -n 15 "$scratch/$name.log"
    if [[ $code != 0 ]]; then
        echo "gpu_check: step $name exited $code" >&2
        failed=1
    fi
}

run_step environment 60 bash -c \
    "(nvidia-smi || echo 'nvidia-smi: not available'); \"$PYTHON\" -c 'import jax; jax.print_environment_info()'"

run_step report 300 "${NETCHECK[@]}" report --full --no-progress \
    --out-dir "$(dirname "$OUT_DIR")" --name "$(basename "$OUT_DIR")" "${REPORT_SHRINK[@]}"

run_step bench_large 150 "${NETCHECK[@]}" bench --large --no-progress \
    --json "$scratch/bench-large.json" "${LARGE_SHRINK[@]}"
run_step bench_large_highest 90 "${NETCHECK[@]}" bench --large --no-progress \
    --dtypes float32 --depths 2 --matmul-precision highest \
    --json "$scratch/bench-large-highest.json" "${LARGE_SHRINK[@]}"

run_step verifier_cost 90 "${NETCHECK[@]}" bench --verifier --no-progress \
    --json "$scratch/verifier-cost.json" "${VERIFIER_SHRINK[@]}"

run_step train_bench 90 "$PYTHON" -m netcheck.bench.trainer_speed --batch-sizes 10 128 1024 \
    --json "$scratch/train-bench.json" "${TRAIN_SHRINK[@]}"

mkdir -p "$OUT_DIR"
cp "$scratch"/*.json "$scratch"/*.log "$scratch/steps.tsv" "$OUT_DIR"/ 2>/dev/null
cat "$OUT_DIR/steps.tsv"
exit "$failed"
