#!/usr/bin/env bash
# The whole GPU tier in one command, on a machine with an NVIDIA GPU and CuPy, with or
# without network. On a machine with the package index, once (the folder travels with the
# checkout; it is ignored by git):
#
#   bash benchmarks/gpu_wheels.sh               # benchmarks/wheels/: Python 3.12 wheels
#
# then on the GPU machine:
#
#   bash benchmarks/gpu_check.sh                # results under benchmarks/results/
#   OUT=/some/dir bash benchmarks/gpu_check.sh
#   bash benchmarks/gpu_check.sh --dry-run      # a CPU machine: everything short of the GPU
#
# Stages, each under its own timeout (GPU_CHECK_TIMEOUT_<STAGE> in seconds overrides one),
# each run whatever happened before; the limits add up to under 8 minutes:
#   install     pip --no-index --no-deps: the wheels of $WHEELS (default benchmarks/wheels),
#               then the package with --no-build-isolation (editable, the C extension built);
#               should that fail, install-fallback: the wheels into $OUT/site-packages, the
#               extension built in place, both on PYTHONPATH
#   imports     every module the stages import
#   pytest-gpu  pytest tests/gpu (JUnit XML + log); fails when CuPy sees no device
#   kernels     gpu_check.py checks: kernels vs the NumPy engine, graph replay vs eager
#               launches, memory-pool growth, epoch timings     (gpu-check-kernels.json)
#   memcheck, racecheck   compute-sanitizer on a tiny fit
#   ncu         Nsight Compute on the two hot kernels (sgd_forward, sgd_update)
#   headline    bench.py's headline case, 2M x 256, 10 classes, batch 1024, log loss: per
#               epoch and to a target held-out log loss, against scikit-learn, PyTorch
#               (eager and CUDA graphs), IBM Snap ML and cuML when installed
# gpu-check-summary.json (device, each stage's status, exit code, seconds and limit) is
# rewritten after every stage, so a run cut short still says what ran.
#
# --dry-run (CI, a few minutes, needs the package index): a wheel folder for this
# machine's Python (gpu_wheels.sh --local), a fresh virtualenv given what the GPU machine
# has installed, then the same install with --no-index, the same imports (CuPy and torch
# apart: only the GPU machine has them), pytest tests/gpu (collected, skipped without a
# GPU), and each stage's set-up on the CPU emulation of the kernels at small sizes. It
# fails if any stage fails.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
for argument in "$@"; do
    case "$argument" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,37p' "$0"; exit 0 ;;
        *) echo "unknown argument: $argument" >&2; exit 2 ;;
    esac
done

OUT_DIR="${OUT:-benchmarks/results}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
export SK_GPUSGD_RESULTS_DIR="$OUT_DIR"
if [[ -z "${PYTHON:-}" ]]; then
    PYTHON=python3
    command -v python3 >/dev/null 2>&1 || PYTHON=python
fi
WHEELS="${WHEELS:-benchmarks/wheels}"
SUMMARY="$OUT_DIR/gpu-check-summary.json"
STAGES_FILE="$OUT_DIR/.gpu-check-stages.tsv"
: >"$STAGES_FILE"
STARTED=$(date +%s)
FAILED=0

# seconds per stage: 450 s in all, 475 s with install-fallback (run only when install
# failed), under 8 minutes with room for the summaries; wheels and venv: dry run only
declare -A LIMIT=(
    [install]=35 [imports]=15 [pytest-gpu]=90 [kernels]=50
    [memcheck]=40 [racecheck]=45 [ncu]=45 [headline]=130
    [install-fallback]=25 [wheels]=180 [venv]=120
)
for name in "${!LIMIT[@]}"; do
    override="GPU_CHECK_TIMEOUT_$(echo "${name//-/_}" | tr '[:lower:]' '[:upper:]')"
    LIMIT[$name]="${!override:-${LIMIT[$name]}}"
done

if [[ $DRY_RUN == 1 ]]; then
    DEVICE="none: dry run on the CPU"
elif command -v nvidia-smi >/dev/null 2>&1; then
    DEVICE="$(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
fi
DEVICE="${DEVICE:-unknown (nvidia-smi absent; see pytest-gpu.log and gpu-check-kernels.json)}"

write_summary() {  # write_summary FINISHED: gpu-check-summary.json from the stages so far
    "$PYTHON" - "$SUMMARY" "$STAGES_FILE" "$DEVICE" "$DRY_RUN" "$STARTED" "$1" <<'PY' || true
import datetime
import json
import sys
import time

path, stages_file, device, dry_run, started, finished = sys.argv[1:]
stages = {}
for line in open(stages_file, encoding="utf-8"):
    name, status, code, seconds, limit, note = line.rstrip("\n").split("\t")
    stages[name] = {
        "status": status,
        "exit_code": int(code) if code.lstrip("-").isdigit() else None,
        "seconds": round(int(seconds) / 1000, 1) if seconds else None,
        "timeout_s": int(limit) if limit else None,
        "log": f"{name}.log" if code else None,
    }
    if note:
        stages[name]["note"] = note
summary = {
    "device": device,
    "dry_run": dry_run == "1",
    "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    "elapsed_s": round(time.time() - float(started), 1),
    "finished": finished == "1",
    "stages": stages,
    "passed": all(s["status"] in ("passed", "not installed", "not run") for s in stages.values()),
}
with open(path, "w", encoding="utf-8") as handle:
    handle.write(json.dumps(summary, indent=2) + "\n")
PY
}

record() {  # record NAME STATUS NOTE: a stage that did not run
    printf '%s\t%s\t\t\t\t%s\n' "$1" "$2" "$3" >>"$STAGES_FILE"
    echo "== $1: $2 ($3)"
    write_summary 0
}

stage() {  # stage NAME COMMAND...: run under the stage's timeout, log, record, summarise
    local name="$1" limit="${LIMIT[$1]}" start code status elapsed
    shift
    echo "== $name (limit ${limit} s): $*"
    start=$(date +%s%N)
    timeout --kill-after=10 "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1
    code=$?
    elapsed=$((($(date +%s%N) - start) / 1000000))  # milliseconds
    case "$code" in
        0) status=passed ;;
        124 | 137) status="timed out" ;;
        *) status=failed ;;
    esac
    LAST_STATUS="$status"
    [[ $status == passed ]] || FAILED=1
    printf '%s\t%s\t%s\t%s\t%s\t\n' "$name" "$status" "$code" "$elapsed" "$limit" >>"$STAGES_FILE"
    tail -n 5 "$OUT_DIR/$name.log"
    printf '== %s: %s (exit %s, %d.%03d s)\n' "$name" "$status" "$code" \
        $((elapsed / 1000)) $((elapsed % 1000))
    write_summary 0
}

# ---------------------------------------------------------------- dry run: the environment
if [[ $DRY_RUN == 1 ]]; then
    DRY_DIR="$(mktemp -d)"
    trap 'rm -rf "$DRY_DIR"' EXIT
    WHEELS="$DRY_DIR/wheels"
    BASE_PYTHON="$PYTHON"
    PYTHON=python3  # for the summaries, until the virtualenv exists
    stage wheels bash benchmarks/gpu_wheels.sh --local --dest "$WHEELS"
    make_venv() {
        "$BASE_PYTHON" -m venv "$DRY_DIR/venv" &&
            "$DRY_DIR/venv/bin/python" -m pip --isolated install --quiet \
                --disable-pip-version-check --no-index --no-deps "$WHEELS"/base/*.whl
    }
    export -f make_venv
    export BASE_PYTHON DRY_DIR WHEELS
    stage venv bash -c make_venv
    PYTHON="$DRY_DIR/venv/bin/python"
fi

# ---------------------------------------------------------------------------- install
install_all() {
    # --isolated: no pip configuration (find-links, indexes) of the machine takes part
    local pip=("$PYTHON" -m pip --isolated install --disable-pip-version-check --no-index
        --no-deps)
    shopt -s nullglob
    local wheels=("$WHEELS"/*.whl)
    if [[ ${#wheels[@]} -gt 0 ]]; then
        "${pip[@]}" "${wheels[@]}" || return 1
    else
        echo "no wheels in $WHEELS: run 'bash benchmarks/gpu_wheels.sh' on a machine with" \
            "the package index (the check goes on with what is installed)"
    fi
    "${pip[@]}" --no-build-isolation -e . || return 1
    "$PYTHON" -m pip list --disable-pip-version-check 2>/dev/null |
        grep -i -E '^(sk-gpusgd|array.api.compat|snapml|numpy|scipy|scikit-learn|torch|cupy)' ||
        true
}
export -f install_all
export PYTHON WHEELS
stage install bash -c install_all
if [[ $LAST_STATUS != passed ]]; then
    # e.g. a read-only environment: the wheels into a folder of the results, the C
    # extension built in place, both on PYTHONPATH for the stages below
    install_fallback() {
        shopt -s nullglob
        local wheels=("$WHEELS"/*.whl)
        if [[ ${#wheels[@]} -gt 0 ]]; then
            "$PYTHON" -m pip --isolated install --disable-pip-version-check --no-index --no-deps \
                --upgrade --target "$OUT_DIR/site-packages" "${wheels[@]}" || return 1
        fi
        "$PYTHON" setup.py -q build_ext --inplace
    }
    export -f install_fallback
    export OUT_DIR
    stage install-fallback bash -c install_fallback
    export PYTHONPATH="$PWD:$OUT_DIR/site-packages${PYTHONPATH:+:$PYTHONPATH}"
fi

# every module a stage imports; CuPy and torch only on the GPU machine
IMPORTS="import sk_gpusgd, array_api_compat, sklearn, scipy, pytest, hypothesis, snapml
import sk_gpusgd._engines.cuda.driver, sk_gpusgd._engines.cuda.launcher, sk_gpusgd._engines.streaming
sys.path.insert(0, 'benchmarks')
import _common, bench, gpu_check
print('sk_gpusgd from', sk_gpusgd.__file__)"
if [[ $DRY_RUN == 0 ]]; then
    IMPORTS="$IMPORTS
import cupy, torch
print('cupy', cupy.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())
try:  # where NVRTC will find cuda_fp16.h and cuda_bf16.h (the kernels include them)
    from cuda.pathfinder import find_nvidia_header_directory
    print('cudart headers (cuda.pathfinder):', find_nvidia_header_directory('cudart'))
except Exception as error:
    print('cuda.pathfinder unavailable:', type(error).__name__, error)"
fi
stage imports "$PYTHON" -c "import sys
$IMPORTS"

pytest_gpu() {
    # on the GPU machine, tests that all skip for want of a device must not pass
    if [[ $DRY_RUN == 0 ]] && ! "$PYTHON" -c "import cupy, sys
sys.exit(cupy.cuda.runtime.getDeviceCount() < 1)"; then
        echo "CuPy sees no CUDA device: the GPU tests would only skip"
        return 1
    fi
    # scikit-learn's array-API dispatch on CuPy (some tests) needs SciPy's array-API mode
    SCIPY_ARRAY_API=1 "$PYTHON" -m pytest tests/gpu -q -rs -p no:cacheprovider \
        --junitxml "$OUT_DIR/pytest-gpu.xml"
}
export -f pytest_gpu
export DRY_RUN OUT_DIR
stage pytest-gpu bash -c pytest_gpu

DRY=()
[[ $DRY_RUN == 1 ]] && DRY=(--dry-run)
stage kernels "$PYTHON" benchmarks/gpu_check.py checks --out "$OUT_DIR" "${DRY[@]}"

TINY=("$PYTHON" benchmarks/gpu_check.py tiny-fit "${DRY[@]}")
if [[ $DRY_RUN == 1 ]]; then  # the fits the sanitizers would watch, on the emulation
    stage memcheck "${TINY[@]}"
    stage racecheck env SK_GPUSGD_CUDA_GRAPHS=0 "${TINY[@]}"
elif command -v compute-sanitizer >/dev/null 2>&1; then
    stage memcheck compute-sanitizer --tool memcheck --error-exitcode 1 "${TINY[@]}"
    # racecheck watches shared memory within blocks: eager launches, one kernel at a time
    stage racecheck env SK_GPUSGD_CUDA_GRAPHS=0 compute-sanitizer --tool racecheck \
        --error-exitcode 1 "${TINY[@]}"
else
    record memcheck "not installed" "compute-sanitizer (CUDA toolkit) not found"
    record racecheck "not installed" "compute-sanitizer (CUDA toolkit) not found"
fi

NCU_FIT=(--rows 200000 --features 256 --classes 10 --batch 1024)
if [[ $DRY_RUN == 1 ]]; then
    stage ncu env SK_GPUSGD_CUDA_GRAPHS=0 "${TINY[@]}" --rows 20000 --features 256 \
        --classes 10 --batch 1024
elif command -v ncu >/dev/null 2>&1; then
    # eager launches so that ncu sees each kernel on its own
    stage ncu env SK_GPUSGD_CUDA_GRAPHS=0 ncu --kernel-name regex:'sgd_forward|sgd_update' \
        --launch-skip 20 --launch-count 4 --set full --force-overwrite \
        --export "$OUT_DIR/ncu-hot-kernels" "${TINY[@]}" "${NCU_FIT[@]}"
else
    record ncu "not installed" "ncu (Nsight Compute) not found"
fi

# the GPU competitors first, scikit-learn (the longest: per-sample updates on the CPU)
# last: a run cut off by the limit keeps what it measured (bench.py saves after each)
HEADLINE=(benchmarks/bench.py --loss log_loss --epochs 3 --fail-on-error
    --competitors sk_gpusgd-gpu torch torch-graph snapml cuml sklearn)
if [[ $DRY_RUN == 1 ]]; then  # the same code on the CPU, a small multiclass case
    stage headline "$PYTHON" "${HEADLINE[@]}" sk_gpusgd-cpu --no-gpu --tasks multiclass \
        --sizes 20000x32 --batch-sizes 1024 --output-prefix gpu-check-bench-dry-run
else
    stage headline "$PYTHON" "${HEADLINE[@]}" --cases headline --output-prefix gpu-check-bench
fi

write_summary 1
rm -f "$STAGES_FILE"
cat "$SUMMARY"
echo "wrote $SUMMARY"
exit "$FAILED"
