#!/usr/bin/env bash
# The GPU measurements issue 10 asks for, for a session lent a GPU machine.
#
# Runs ON the GPU machine through ../shared/gpu/device.sh (which installs the carried
# wheels and builds mmcv's CUDA ops, about 260 s), from the device tool:
#   carry [".gpu"], command: bash .gpu/device.sh 'bash scripts/gpu/gpu_checks.sh train'
#   then, on the still-warm machine:       bash .gpu/device.sh 'bash scripts/gpu/gpu_checks.sh infer'
# Logs go under $OUT (default /tmp/gpu_checks); every step has a timeout so one slow step
# cannot eat the session's device time. Sized for the 15-minute device budget: machine
# start + mmcv build ~6 min, `train` ~5 min, `infer` ~3 min (trim ITERS/IMAGES if needed).
#
# train: DCN_plus at batch 4 on synthetic 1024x768 photos, fp32 then --amp, 3 epochs of
#        80 iterations: the start-up phase by phase under cProfile (--profile-startup),
#        s/iter, data_time and memory in mmengine's log, and iterations 101-105 under
#        PyTorch's profiler (--profile-steps: how busy the GPU is, the costliest kernels;
#        fp32 against --amp answers why AMP is or is not faster).
# infer: `cardd infer` images/s at batch 1/4/8, float32 and --half, pictures on and off,
#        threads on and off (scripts/bench/bench_throughput.py), and --half's agreement.
# rtmdet: both of the above for the fast family (issue 34): RTMDet_ins_s trained with and
#        without --amp (batch 16: 20 iterations per epoch, profiled after 40), then its
#        images/s at batch 1, 4 and 8.
#
# Dry run of the plumbing on a CPU machine (the --amp run fails there, by design):
#   CONFIG=tiny_DCN_plus DEVICE=cpu IMAGES=24 PROFILE_AFTER=2 PY=.venv/bin/python \
#     bash scripts/gpu/gpu_checks.sh all
#   RTMDET_CONFIG=tiny_RTMDet_ins DEVICE=cpu IMAGES=24 PROFILE_AFTER=2 PY=.venv/bin/python \
#     bash scripts/gpu/gpu_checks.sh rtmdet
set -uo pipefail
part=${1:-all}
if [[ $part == rtmdet ]]; then
    CONFIG=${RTMDET_CONFIG:-RTMDet_ins_s} PROFILE_AFTER=${PROFILE_AFTER:-40} \
        OUT=${OUT:-/tmp/gpu_checks}/rtmdet bash "$0" all
    exit $?
fi
OUT=${OUT:-/tmp/gpu_checks}
PY=${PY:-python3}
CONFIG=${CONFIG:-DCN_plus}
DEVICE=${DEVICE:-cuda}
IMAGES=${IMAGES:-480}             # 2/3 train: 320 photos, 80 iterations per epoch at batch 4
PROFILE_AFTER=${PROFILE_AFTER:-100}
mkdir -p "$OUT"
data=/tmp/gpu_synth_$IMAGES

if [[ $part == train || $part == all ]]; then
    [[ -d $data/CarDD_COCO ]] || timeout 120 $PY -m cardd synth-data --dest "$data" \
        --images "$IMAGES" --size 1024x768 > "$OUT/synth.log" 2>&1
    common=(--config "$CONFIG" --device "$DEVICE" --data-root "$data/CarDD_COCO" --load-from none
            --max-epochs 3 --exist-ok --profile-steps 5 --profile-after "$PROFILE_AFTER"
            --cfg-options default_hooks.logger.interval=20 --cfg-options train_cfg.val_interval=100)
    for run in fp32 amp; do
        extra=(); [[ $run == amp ]] && extra=(--amp)
        [[ $run == fp32 ]] && extra=(--profile-startup)
        rm -rf "/tmp/w_$run"
        timeout 240 $PY -m cardd train "${common[@]}" "${extra[@]}" --work-dir "/tmp/w_$run" \
            > "$OUT/train_$run.log" 2>&1
        echo "[gpu_checks] train $run: exit $?"
        for f in startup.json profile_steps.txt; do
            cp /tmp/w_$run/*/$f "$OUT/${f%%.*}_$run.${f#*.}" 2>/dev/null
        done
    done
    grep -h -E "start-up|profiled iterations|Epoch\(train\).*\[(20|60|80)/|Error" "$OUT"/train_*.log \
        | cut -c1-400
fi

if [[ $part == infer || $part == all ]]; then
    # random weights unless a checkpoint is given as $CHECKPOINT
    timeout 300 $PY scripts/bench/bench_throughput.py --config "$CONFIG" --device "$DEVICE" \
        --batches 1,4,8 --half --images 32 --size 1024x768 --score-thr 0 \
        ${CHECKPOINT:+--checkpoint "$CHECKPOINT"} > "$OUT/throughput.log" 2>&1
    echo "[gpu_checks] throughput: exit $?"
    tail -14 "$OUT/throughput.log"
fi
