#!/usr/bin/env bash
# The one command a session with a GPU runs (issues 15, 18): benchmarks/gpu_epoch.py part by
# part, each step under `timeout`, every row appended to $OUT/gpu_epoch_rows.jsonl and the log
# as soon as it is measured, so a run cut short still returns what it measured. Budget: under
# 8 minutes on one GPU with 16 cores (the step limits below add up to 7m20s, 7m50s with the kill grace).
#
# faiss is optional (the device machines have torch, torchvision, sklearn, no faiss and no
# network): without it the faiss-cpu baselines of part (c) are skipped with a note. To have
# them, prepare once on a machine with network, in the repo root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .whl faiss-cpu
# and pass carry [".whl"] to the device tool's run, with timeout_s 540 and the command
#   bash benchmarks/gpu_run.sh
# GPU_EPOCH_ARGS adds options to every step (e.g. "--jpegs 4096 --epoch-budget-s 60").
set -u -o pipefail
OUT="${OUT:-/tmp/gpu_epoch_out}"
mkdir -p "$OUT"
LOG="$OUT/gpu_epoch.log"
ROWS="$OUT/gpu_epoch_rows.jsonl"
: > "$LOG"
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1

step() {  # step SECONDS NAME COMMAND...: run under timeout, log, never stop the script
    local limit=$1 name=$2
    shift 2
    local start=$SECONDS
    echo "== $name (limit ${limit}s)" | tee -a "$LOG"
    timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - start))s" | tee -a "$LOG"
}

if compgen -G ".whl/*.whl" > /dev/null; then
    step 30 "faiss-cpu wheel" python3 -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH}"
fi
step 30 "machine" bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv;
    python3 -c "import torch, torchvision; print(\"torch\", torch.__version__, \"torchvision\", torchvision.__version__)";
    python3 -c "import faiss; print(\"faiss\", faiss.__version__)" || echo "faiss: not installed"'
# (d) first: the headline (a real epoch, phase by phase, formula checked against a measured
# whole epoch of up to 120 s); then (c) clustering, (a) model only, (b) pipelines
for part in d:185 c:80 a:55 b:60; do
    name=${part%%:*}
    limit=${part##*:}
    # shellcheck disable=SC2086
    step "$limit" "part ($name)" python3 benchmarks/gpu_epoch.py --parts "$name" \
        --rows-jsonl "$ROWS" --out "$OUT/gpu_epoch_$name.json" ${GPU_EPOCH_ARGS:-}
done
echo "rows: $ROWS" | tee -a "$LOG"
