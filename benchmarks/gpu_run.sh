#!/usr/bin/env bash
# The one command a session with a GPU runs (issue 15): the whole gpu_epoch benchmark with the
# faiss-cpu wheel on the path (the H200 machine has torch 2.11+cu130, torchvision, sklearn,
# timm, no faiss, no network). Prepare once, on the machine with network, in the repo root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .whl faiss-cpu
# then call the device tool's run with carry [".whl"], timeout_s 600 and the command
#   bash benchmarks/gpu_run.sh
# It writes $OUT/gpu_epoch.json and $OUT/gpu_epoch.log (rows also stream to the log as they
# are measured, so a run cut short still returns the parts done). About 5-7 minutes on an
# H200; GPU_EPOCH_ARGS adds options (e.g. "--jpegs 4096 --pic-rows 100000" to shorten it).
set -u -o pipefail
OUT="${OUT:-/tmp/gpu_epoch_out}"
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu_epoch.log"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" \
    2>&1 | tee -a "$OUT/gpu_epoch.log"
python3 -c "import faiss; print('faiss', faiss.__version__)" 2>&1 | tee -a "$OUT/gpu_epoch.log"
# shellcheck disable=SC2086
python3 benchmarks/gpu_epoch.py --out "$OUT/gpu_epoch.json" ${GPU_EPOCH_ARGS:-} \
    2>&1 | tee -a "$OUT/gpu_epoch.log"
