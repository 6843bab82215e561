#!/usr/bin/env bash
# One short, prepared run of the checks that need a CUDA device (about 8 minutes on one H200, estimated):
# the CUDA tests, the CD/PCD epoch against its floor, the 10-epoch default model trained and
# measured on the GPU, two PT epochs, AIS against its floor, and a short DBM run and its
# evaluation. Results go to $OUT (default
# ./gpu-results): a log per step and JSON.
#
#     BOLTZKIT_DATA=path/to/data PYTHONPATH=src bash benchmarks/gpu_check.sh
#
# Each step is time-limited so that one slow step cannot take the rest of the session with it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-src}
export BOLTZKIT_DATA=${BOLTZKIT_DATA:-shared/data}
PY=${PY:-python3}

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2; shift 2
    echo "== $name" | tee -a "$OUT/summary.txt"
    local t0=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    echo "   exit $? after $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
    tail -3 "$OUT/$name.log" | sed 's/^/   /' | tee -a "$OUT/summary.txt"
}

$PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" \
    | tee "$OUT/summary.txt"
step tests 150 $PY -m pytest -q -x tests/test_gpu.py tests/test_gpu_rbm.py
step bench_cd_gpu 120 $PY benchmarks/bench_cd_gpu.py --device cuda --json "$OUT/bench_cd_gpu.json"
step train_default 90 $PY -m boltzkit train --data binarized-mnist --hidden 500 --method pcd \
    --epochs 10 --device cuda --no-progress --out "$OUT/run10"
step evaluate_default 90 $PY -m boltzkit evaluate "$OUT/run10/model.safetensors" \
    --data binarized-mnist --log-z both --chains 1000 --device cuda --json
step train_pt 90 $PY -m boltzkit train --data binarized-mnist --hidden 500 --method pt \
    --replicas 10 --epochs 2 --device cuda --no-progress --out "$OUT/run_pt"
step bench_ais_gpu 90 $PY benchmarks/bench_ais.py --device cuda --repeats 2 --products auto \
    --json "$OUT/bench_ais_gpu.json"
step train_dbm 120 $PY -m boltzkit train --model dbm --data binarized-mnist --hidden 500,1000 \
    --pretrain-epochs 2 --epochs 3 --device cuda --no-progress --out "$OUT/run_dbm"
step evaluate_dbm 120 $PY -m boltzkit evaluate "$OUT/run_dbm" --log-z both --sweeps 1000 \
    --device cuda --json
