#!/usr/bin/env bash
# Prepare, on a machine with the package index, the wheels an offline GPU machine lacks,
# so that benchmarks/gpu_check.sh installs everything there with pip --no-index.
#
#   bash benchmarks/gpu_wheels.sh                      # Python 3.12, manylinux x86-64
#   bash benchmarks/gpu_wheels.sh --python-version 3.13
#   bash benchmarks/gpu_wheels.sh --local --dest DIR   # for this machine's Python (dry run)
#
# Writes DEST (default benchmarks/wheels/, ignored by git; about 8 MB):
#   the run-time dependency the GPU machine lacks (array-api-compat) and the comparison
#   library of the headline benchmark (IBM Snap ML, whose wheel carries its own GPU code;
#   it needs only numpy, scipy and scikit-learn). Everything else the check uses is on
#   the GPU machine already: numpy, scipy, scikit-learn, setuptools, wheel, pytest,
#   hypothesis, torch, cupy, the CUDA tools. cuML is not fetched: its wheels are far too
#   large to travel with the checkout, so the benchmark skips it with a reason unless it
#   is installed there.
# --local also fetches, under DEST/base/, the packages the GPU machine has and a fresh
# virtualenv lacks (numpy, scipy, scikit-learn, setuptools, wheel, pytest, hypothesis and
# their dependencies), for `bash benchmarks/gpu_check.sh --dry-run`.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the GPU machine lacks, pinned to the versions checked against the code.
GPU_WHEELS=("array-api-compat==1.16.0" "snapml==1.17.2")
# What the GPU machine has and a fresh virtualenv lacks (the dry run's base).
BASE_PACKAGES=(numpy scipy scikit-learn setuptools wheel pytest hypothesis)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64)

python_version=3.12
local_mode=0
dest=benchmarks/wheels
PYTHON="${PYTHON:-python3}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --python-version) python_version="$2"; shift 2 ;;
        --local) local_mode=1; shift ;;
        --dest) dest="$2"; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

mkdir -p "$dest"
pip_download=("$PYTHON" -m pip download --quiet --disable-pip-version-check --only-binary=:all:)
if [[ $local_mode == 1 ]]; then
    "${pip_download[@]}" --no-deps -d "$dest" "${GPU_WHEELS[@]}"
    mkdir -p "$dest/base"
    "${pip_download[@]}" -d "$dest/base" "${BASE_PACKAGES[@]}"
else
    target=(--python-version "$python_version" --implementation cp)
    for platform in "${PLATFORMS[@]}"; do
        target+=(--platform "$platform")
    done
    "${pip_download[@]}" --no-deps "${target[@]}" -d "$dest" "${GPU_WHEELS[@]}"
fi
echo "wheels in $dest ($(du -sh "$dest" | cut -f1)):"
ls -1 "$dest"
