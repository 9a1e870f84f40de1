#!/usr/bin/env bash
# The one command a session with a GPU runs (issues 15, 18, 27): benchmarks/gpu_epoch.py part
# by part, the input-pipeline comparison (benchmarks/input_pipeline.py, when present) and a
# linear-conv epoch on ImageNet-sized JPEGs (benchmarks/linear_epoch.py), each step under
# `timeout`, every gpu_epoch row appended to $OUT/gpu_epoch_rows.jsonl and the log as soon as
# it is measured, so a run cut short still returns what it measured. Budget: under 8 minutes
# on one GPU with 16 cores: the step limits below add up to 7m00s, 7m40s with the
# 5 s kill grace of each step (tests/benchmarks/test_gpu_run.py checks the sum).
#
# faiss is optional (the device machines have torch, torchvision, sklearn, no faiss, no DALI
# and no network): without it the faiss-cpu baselines of part (c) are skipped with a note;
# without DALI the pipeline comparison has no DALI row. To have faiss, prepare once on a
# machine with network, in the repo root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .whl faiss-cpu
# and pass carry [".whl"] to the device tool's run, with timeout_s 540 and the command
#   bash benchmarks/gpu_run.sh
# GPU_EPOCH_ARGS adds options to every gpu_epoch step (e.g. "--jpegs 4096").
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
    step 25 "faiss-cpu wheel" python3 -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH}"
fi
step 15 "machine" bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv;
    python3 -c "import torch, torchvision; print(\"torch\", torch.__version__, \"torchvision\", torchvision.__version__)";
    python3 -c "import faiss; print(\"faiss\", faiss.__version__)" || echo "faiss: not installed"'
# (d) first: the headline (a real epoch, phase by phase, formula checked against a measured
# whole epoch of up to 80 s); then the linear-conv epoch, the input pipelines, (c)
# clustering, (a) model only, (b) today's two pipelines on uniform 500x375 JPEGs
step 140 "part (d)" python3 benchmarks/gpu_epoch.py --parts d --epoch-budget-s 80 \
    --rows-jsonl "$ROWS" --out "$OUT/gpu_epoch_d.json" ${GPU_EPOCH_ARGS:-}
step 55 "linear-conv epoch" python3 benchmarks/linear_epoch.py --out "$OUT/linear_epoch.json"
if [ -f benchmarks/input_pipeline.py ]; then
    python3 -c "import nvidia.dali" 2> /dev/null || echo "DALI: not installed (no DALI row)" \
        | tee -a "$LOG"
    step 60 "input pipelines" python3 -m benchmarks --only input_pipeline \
        --output "$OUT/input_pipeline.json"
else
    echo "== input pipelines: skipped (benchmarks/input_pipeline.py is absent)" | tee -a "$LOG"
fi
for part in c:55 a:35 b:35; do
    name=${part%%:*}
    limit=${part##*:}
    # shellcheck disable=SC2086
    step "$limit" "part ($name)" python3 benchmarks/gpu_epoch.py --parts "$name" \
        --rows-jsonl "$ROWS" --out "$OUT/gpu_epoch_$name.json" ${GPU_EPOCH_ARGS:-}
done
echo "rows: $ROWS" | tee -a "$LOG"
