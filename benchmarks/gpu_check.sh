#!/usr/bin/env bash
# The whole GPU tier in one command, on a machine with an NVIDIA GPU and CuPy installed
# (pip install -e ".[cuda13]" once, or the cuda12 extra):
#
#   bash benchmarks/gpu_check.sh            # results under benchmarks/results/
#   OUT=/some/dir bash benchmarks/gpu_check.sh
#
# Stages (each runs even when an earlier one failed; gpu-check-summary.json says which passed):
#   1. pip install --no-deps -e .
#   2. pytest tests/gpu                          (JUnit XML + log)
#   3. kernels vs the NumPy engine, graph replay vs eager launches, memory-pool growth over
#      replays, step timings                     (gpu-check-kernels.json)
#   4. compute-sanitizer memcheck and racecheck on a tiny fit
#   5. ncu on the two hot kernels (sgd_forward, sgd_update)
#   6. the benchmark's headline case: 2M x 256, 10 classes, batch 1024, every competitor
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-benchmarks/results}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
export SK_GPUSGD_RESULTS_DIR="$OUT_DIR"
PYTHON="${PYTHON:-python}"
declare -A STATUS

stage() {  # stage NAME COMMAND...: run, log to $OUT_DIR/NAME.log, remember the exit code
    local name="$1"
    shift
    echo "== $name: $*"
    "$@" >"$OUT_DIR/$name.log" 2>&1
    STATUS[$name]=$?
    tail -n 5 "$OUT_DIR/$name.log"
    echo "== $name: exit ${STATUS[$name]}"
}

stage install "$PYTHON" -m pip install --no-deps -e .
stage pytest-gpu "$PYTHON" -m pytest tests/gpu -q -rs --junitxml "$OUT_DIR/pytest-gpu.xml"
stage kernels "$PYTHON" benchmarks/gpu_check.py checks --out "$OUT_DIR"

if command -v compute-sanitizer >/dev/null 2>&1; then
    stage memcheck compute-sanitizer --tool memcheck --error-exitcode 1 \
        "$PYTHON" benchmarks/gpu_check.py tiny-fit
    # racecheck watches shared memory within blocks: eager launches, one kernel at a time
    stage racecheck env SK_GPUSGD_CUDA_GRAPHS=0 compute-sanitizer --tool racecheck \
        --error-exitcode 1 "$PYTHON" benchmarks/gpu_check.py tiny-fit
else
    echo "compute-sanitizer not found (CUDA toolkit): memcheck and racecheck not run"
    STATUS[memcheck]="not installed"
    STATUS[racecheck]="not installed"
fi

if command -v ncu >/dev/null 2>&1; then
    # eager launches so that ncu sees each kernel on its own
    stage ncu env SK_GPUSGD_CUDA_GRAPHS=0 ncu --kernel-name regex:'sgd_forward|sgd_update' \
        --launch-skip 20 --launch-count 4 --set full --force-overwrite \
        --export "$OUT_DIR/ncu-hot-kernels" "$PYTHON" benchmarks/gpu_check.py tiny-fit \
        --rows 200000 --features 256 --classes 10 --batch 1024
else
    echo "ncu not found (Nsight Compute): kernel profile not taken"
    STATUS[ncu]="not installed"
fi

stage headline "$PYTHON" benchmarks/bench.py --cases headline --epochs 3 \
    --competitors sk_gpusgd-gpu sklearn torch torch-graph cuml --output-prefix gpu-check-bench

"$PYTHON" - "$OUT_DIR" "$(for k in "${!STATUS[@]}"; do printf '%s=%s;' "$k" "${STATUS[$k]}"; done)" <<'PY'
import json, sys, datetime
out_dir, pairs = sys.argv[1], sys.argv[2]
stages = dict(item.split("=", 1) for item in pairs.split(";") if item)
try:
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    device = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
except Exception as error:  # noqa: BLE001
    device = f"unavailable: {error}"
summary = {
    "device": device,
    "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    "stages": {k: (int(v) if v.lstrip("-").isdigit() else v) for k, v in stages.items()},
}
summary["passed"] = all(v == 0 for v in summary["stages"].values() if isinstance(v, int))
path = f"{out_dir}/gpu-check-summary.json"
open(path, "w").write(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
print("wrote", path)
PY
