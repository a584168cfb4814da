#!/usr/bin/env bash
# Set up .venv-onnx: cardd for .onnx models only, without PyTorch, mmcv, mmdet or mmengine.
#
# This is `pip install cardd` (cardd's base dependencies are exactly that runtime:
# onnxruntime, numpy, OpenCV, Pillow, pycocotools, PyYAML and the command line's and
# service's libraries), editable, into .venv-onnx. In it, `cardd infer`, `serve`,
# `assess`, `eval` and `cardd.DamageDetector` take a `cardd export --format onnx`
# model; the commands that train or export need `pip install "cardd[torch]"`.
#
# Environment overrides:
#   ONNX_VENV   where (default: .venv-onnx)
#   ORT_SPEC    another onnxruntime distribution (onnxruntime-gpu for the CUDA and
#               TensorRT providers): installed instead of onnxruntime

#   PYTHON      interpreter to create the venv with
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV=${ONNX_VENV:-"$ROOT/.venv-onnx"}
log() { printf '[onnx-env] %s\n' "$*"; }

if [[ ! -x "$VENV/bin/python" ]]; then
    py=${PYTHON:-python$(tr -d '[:space:]' < .python-version)}
    command -v "$py" >/dev/null 2>&1 || py=python3
    log "creating $VENV with $py"
    "$py" -m venv "$VENV"
fi
PY="$VENV/bin/python"
[[ -x "$VENV/bin/uv" ]] || "$PY" -m pip install -q --disable-pip-version-check 'uv>=0.5'
if [[ -z "${ORT_SPEC:-}" ]]; then
    "$PY" "$ROOT/scripts/setup/uv_install.py" -q -e .
else  # cardd's requirements with ORT_SPEC in onnxruntime's place (two would share files)
    mapfile -t requirements < <("$PY" - <<'PYEOF'
import os, tomllib
with open("pyproject.toml", "rb") as f:
    base = tomllib.load(f)["project"]["dependencies"]
for requirement in base:
    print(os.environ["ORT_SPEC"] if requirement.startswith("onnxruntime") else requirement)
PYEOF
)
    "$PY" "$ROOT/scripts/setup/uv_install.py" -q "${requirements[@]}"
    "$PY" "$ROOT/scripts/setup/uv_install.py" -q --no-deps -e .
fi
# what must not be there, and what must work
"$PY" - <<'PYEOF'
import importlib.util, sys
present = [m for m in ("torch", "torchvision", "mmcv", "mmdet", "mmengine")
           if importlib.util.find_spec(m)]
if present:
    sys.exit(f"[onnx-env] ERROR: {', '.join(present)} installed in the ONNX environment")
import onnxruntime
from cardd.detector.onnx_backend import OnnxModel  # noqa: F401
print(f"[onnx-env] ok: onnxruntime {onnxruntime.__version__}, no PyTorch")
PYEOF
size=$(du -sm "$VENV" | cut -f1)
log "done: $VENV ($size MB); run '$VENV/bin/cardd infer photo.jpg --checkpoint model.onnx'"
