#!/usr/bin/env bash
# The first GPU run of cardd's default kernels (CARDD_OPS=torchvision): one device call.
#
# What `pip install "cardd[torch]"` installs has no compiled mmcv ops: the mmcv-lite wheel,
# and `import cardd` registers cardd/openmmlab/kernels.py as its kernels (torchvision's
# CUDA kernels on a GPU). This script installs exactly that on the GPU machine (no mmcv
# build: seconds instead of ../shared/gpu's 260 s),
# then, each step under a timeout, everything under $OUT:
#   1. the CUDA test module and the kernel convention tests on the GPU
#      (CARDD_TEST_DEVICE=cuda: tests/openmmlab/test_kernels_cuda.py, test_kernel_reference.py,
#      test_kernel_golden.py)                                              -> pytest_cuda.log
#   2. DCN_plus training, 200 iterations at batch 4 on synthetic 1024x768 photos, fp32 and
#      --amp, iterations 101-105 under PyTorch's profiler (--profile-steps): s/iter,
#      data_time, memory, GPU busy share                      -> train_{fp32,amp}.log, profile_*
#   3. inference images/s at batch 1/4/8, float32 and --half, and --half's agreement
#      (scripts/bench/bench_throughput.py)                                       -> throughput.log
# Sized for 8 minutes on an H100/H200 (tests ~1.5, training ~2 x 2, inference ~1.5).
#
# Here, before the call (the GPU machine has no network):
#   bash ../shared/gpu/prepare.sh fastapi uvicorn python-multipart starlette pydantic \
#        pydantic-core annotated-types typing-inspection anyio sniffio h11
#   pip download --no-deps -d .gpu/whl/ mmcv-lite==2.1.0
# Device call: carry [".gpu"], command: bash scripts/gpu/gpu_first_run.sh
#
# Dry run on a CPU machine, in the project's venv (the --amp run and the CUDA tests are
# refused or skipped there, by design):
#   INSTALL=0 PY=.venv/bin/python DEVICE=cpu CONFIG=tiny_DCN_plus IMAGES=24 ITERS=6 \
#     PROFILE_AFTER=2 bash scripts/gpu/gpu_first_run.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu_first_run}
PY=${PY:-python3}
CONFIG=${CONFIG:-DCN_plus}
DEVICE=${DEVICE:-cuda}
IMAGES=${IMAGES:-600}             # synth-data keeps 2/3 for training: 400 photos, 100 it/epoch
ITERS=${ITERS:-200}
PROFILE_AFTER=${PROFILE_AFTER:-100}
mkdir -p "$OUT"
root=$(pwd)
export PYTHONUNBUFFERED=1

if [[ ${INSTALL:-1} == 1 ]]; then
    start=$(date +%s)
    site=/tmp/site-default-kernels
    if [[ ! -f $site/.ok ]]; then
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
            .gpu/whl/*.whl > "$OUT/install.log" 2>&1 || { tail -20 "$OUT/install.log"; exit 1; }
        touch "$site/.ok"
    fi
    export PYTHONPATH=$site:$root
    echo "[gpu_first_run] installed in $(( $(date +%s) - start )) s"
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
fi
$PY -m cardd doctor > "$OUT/doctor.log" 2>&1
echo "[gpu_first_run] doctor: exit $?"; grep -i -E "mmcv|kernel|cuda" "$OUT/doctor.log" | head -6

# 1. kernels and the CUDA test module on the GPU
CARDD_TEST_DEVICE=$DEVICE timeout 240 $PY -m pytest -q -p no:cacheprovider -rs \
    tests/openmmlab/test_kernels_cuda.py tests/openmmlab/test_kernel_reference.py tests/openmmlab/test_kernel_golden.py \
    > "$OUT/pytest_cuda.log" 2>&1
echo "[gpu_first_run] CUDA tests: exit $?"; tail -4 "$OUT/pytest_cuda.log"

# 2. training, fp32 then --amp
data=/tmp/gpu_synth_$IMAGES
[[ -d $data/CarDD_COCO ]] || timeout 150 $PY -m cardd synth-data --dest "$data" \
    --images "$IMAGES" --size 1024x768 > "$OUT/synth.log" 2>&1
train_images=$($PY -c "import json,sys; print(len(json.load(open(sys.argv[1]))['images']))" \
    "$data/CarDD_COCO/annotations/instances_train2017.json")
per_epoch=$(( train_images / 4 ))
epochs=$(( (ITERS + per_epoch - 1) / per_epoch ))
common=(--config "$CONFIG" --device "$DEVICE" --data-root "$data/CarDD_COCO" --load-from none
        --max-epochs "$epochs" --exist-ok --profile-steps 5 --profile-after "$PROFILE_AFTER"
        --cfg-options default_hooks.logger.interval=20 --cfg-options train_cfg.val_interval=1000
        --cfg-options default_hooks.checkpoint.interval=1000)
for run in fp32 amp; do
    extra=(); [[ $run == amp ]] && extra=(--amp)
    rm -rf "/tmp/w_$run"
    timeout 200 $PY -m cardd train "${common[@]}" "${extra[@]}" --work-dir "/tmp/w_$run" \
        > "$OUT/train_$run.log" 2>&1
    echo "[gpu_first_run] train $run ($epochs epochs of $per_epoch iterations): exit $?"
    for f in startup.json profile_steps.txt; do
        cp /tmp/w_$run/*/$f "$OUT/${f%%.*}_$run.${f#*.}" 2>/dev/null
    done
done
grep -h -E "profiled iterations|Epoch\(train\).*\[(20|60|100)/|Error" "$OUT"/train_*.log | cut -c1-300

# 3. inference throughput, float32 and --half (random weights unless $CHECKPOINT)
timeout 150 $PY scripts/bench/bench_throughput.py --config "$CONFIG" --device "$DEVICE" \
    --batches 1,4,8 --half --images 32 --size 1024x768 --score-thr 0 \
    ${CHECKPOINT:+--checkpoint "$CHECKPOINT"} > "$OUT/throughput.log" 2>&1
echo "[gpu_first_run] throughput: exit $?"; tail -14 "$OUT/throughput.log"
