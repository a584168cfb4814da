#!/usr/bin/env bash
# Set up .venv-onnx: cardd for .onnx models only, without PyTorch, mmcv, mmdet or mmengine.
#
# cardd's own package is installed without its dependencies (those are the PyTorch
# stack), then the `onnx` extra of pyproject.toml: onnxruntime, numpy, OpenCV
# (headless), Pillow, pycocotools, PyYAML and the command line's and service's
# libraries. In it, `cardd infer`, `cardd serve`, `cardd assess` and
# `cardd.DamageDetector` take a `cardd export --format onnx` model; the commands
# that train, evaluate or export need the full install (`make setup`).
#
# Environment overrides:
#   ONNX_VENV   where (default: .venv-onnx)
#   ORT_SPEC    the onnxruntime requirement (default: from pyproject's extra;
#               onnxruntime-gpu for the CUDA/TensorRT providers)
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
# the `onnx` extra's requirements, read from pyproject.toml
mapfile -t requirements < <("$PY" - <<'PYEOF'
import os, tomllib
with open("pyproject.toml", "rb") as f:
    extra = tomllib.load(f)["project"]["optional-dependencies"]["onnx"]
spec = os.environ.get("ORT_SPEC")
for requirement in extra:
    print(spec if spec and requirement.startswith("onnxruntime") else requirement)
PYEOF
)
"$PY" "$ROOT/scripts/setup/uv_install.py" -q "${requirements[@]}"
"$PY" "$ROOT/scripts/setup/uv_install.py" -q --no-deps -e .
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
