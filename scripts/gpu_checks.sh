#!/usr/bin/env bash
# The GPU measurements issue 10 asks for, in one call, for a session lent a GPU machine.
#
# Runs ON the GPU machine through ../shared/gpu/device.sh (which installs the carried
# wheels and builds mmcv's CUDA ops), e.g. from the device tool:
#   carry [".gpu"], command: bash .gpu/device.sh 'bash scripts/gpu_checks.sh'
# Writes every log under $OUT (default /tmp/gpu_checks); each step is bounded by a timeout
# so one slow step cannot eat the session's device time. Budget: about 10 minutes after
# device.sh's mmcv build (about 260 s): trim --images or the iterations to fit.
#
#  1. training start-up, phase by phase, under cProfile (`--profile-startup`);
#  2. DCN_plus training, 200 iterations at batch 4, fp32 then --amp: s/iter, data_time,
#     memory (mmengine's log lines);
#  3. `cardd infer` images/s at batch 1/4/8, float32 and --half, with and without pictures,
#     threads on and off (scripts/bench_throughput.py), and --half's agreement.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
PY=${PY:-python3}
data=/tmp/gpu_synth
[[ -d $data/CarDD_COCO ]] || timeout 300 $PY -m cardd synth-data --dest $data --images 1200 --size 1024x768 \
    > "$OUT/synth.log" 2>&1
common=(--config DCN_plus --data-root $data/CarDD_COCO --load-from none --max-epochs 1 --exist-ok
        --cfg-options default_hooks.logger.interval=20 train_cfg.val_interval=100)

# 1 + 2: the first run also profiles its start-up; 200 iterations each (~800 train images / batch 4)
timeout 420 $PY -m cardd train "${common[@]}" --work-dir /tmp/w_fp32 --profile-startup \
    > "$OUT/train_fp32.log" 2>&1
timeout 420 $PY -m cardd train "${common[@]}" --work-dir /tmp/w_amp --amp > "$OUT/train_amp.log" 2>&1
cp /tmp/w_fp32/*/startup.json "$OUT/startup_fp32.json" 2>/dev/null
cp /tmp/w_amp/*/startup.json "$OUT/startup_amp.json" 2>/dev/null

# 3: inference throughput (random weights unless a checkpoint is given as $CHECKPOINT)
timeout 600 $PY scripts/bench_throughput.py --config DCN_plus --device cuda --batches 1,4,8 \
    --half --images 32 --size 1024x768 ${CHECKPOINT:+--checkpoint "$CHECKPOINT"} \
    > "$OUT/throughput.log" 2>&1
grep -h -E "start-up|Epoch\(train\).*\[(20|100|200)/|memory" "$OUT"/train_*.log | cut -c1-300
tail -8 "$OUT/throughput.log"
