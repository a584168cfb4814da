#!/usr/bin/env bash
# Set up .venv for working on cardd: an editable install with the test extras.
#
# For using cardd, one pip command is enough (docs/explanation/install.md):
#   pip install "cardd[torch]"     everything;   pip install cardd     .onnx models only
# This script is that install for a checkout: `uv pip install -e ".[test]"` with the
# torch build below, into .venv, from wheels only (no compiler: mmcv is the pure
# `mmcv-lite` wheel and cardd registers its kernels in the process,
# cardd/openmmlab/ext_finder.py). Packages are installed with uv (bootstrapped into
# the venv by pip), which links them from its cache of unpacked wheels: torch with its
# CUDA libraries (5 GB) lands in a fresh clone's venv in about a second instead of
# pip's two minutes. scripts/setup/uv_install.py hands uv pip's configuration
# (mirrors, wheel folders, constraints, CA bundle), so it installs from where pip would.
#
# Two sets of mmcv kernels, one variable:
#   CARDD_OPS=torchvision (default): mmcv-lite from PyPI and cardd's kernels
#       (cardd/openmmlab/kernels.py: torchvision's, and a faster CPU deformable convolution).
#   CARDD_OPS=compiled: mmcv's C++/CUDA ops built from its sdist (~15 min on 2 cores,
#       once per machine; needs gcc with C++20 and OpenMP), patched by
#       scripts/setup/patch_mmcv.py: setuptools<82 for the build, --no-build-isolation
#       (an isolated build has no torch and silently drops the ops), -std=c++20 (torch
#       >= 2.10 headers), multi-threaded CPU DCN and RoIAlign, and the distribution named
#       mmcv-lite so that it replaces the wheel. The built wheel is cached outside the
#       checkout, keyed by mmcv version, Python, torch and CPU/CUDA.
#
# Environment overrides:
#   CARDD_OPS       torchvision (default) or compiled
#   TORCH_SPEC      pip requirement(s) for torch/torchvision
#                   (default: "torch==2.14.1 torchvision==0.29.1", the tested ones)
#   FORCE_CUDA=1    build mmcv's CUDA ops without a visible GPU (also set
#                   TORCH_CUDA_ARCH_LIST, e.g. "9.0" for an H100)
#   MAX_JOBS        parallel compile jobs (default: number of cores)
#   CARDD_CACHE     cache folder (default: ~/.cache/cardd)
#   UV_CACHE_DIR    uv's cache of unpacked wheels (default: ~/.cache/uv)
#   PYTHON          interpreter to create the venv with
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
MMCV_VERSION=2.1.0
CACHE=${CARDD_CACHE:-"$HOME/.cache/cardd"}
CARDD_OPS=${CARDD_OPS:-torchvision}

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
[[ "$CARDD_OPS" == torchvision || "$CARDD_OPS" == compiled ]] \
    || die "CARDD_OPS must be torchvision or compiled, got '$CARDD_OPS'"

# --- 1. interpreter and venv -------------------------------------------------
want=$(tr -d '[:space:]' < .python-version)
if [[ ! -x "$VENV/bin/python" ]]; then
    py=${PYTHON:-}
    if [[ -z "$py" ]]; then
        if command -v "python$want" >/dev/null 2>&1; then
            py="python$want"
        else
            py=python3
            log "python$want not found; falling back to python3"
        fi
    fi
    command -v "$py" >/dev/null 2>&1 || die "no Python interpreter '$py' found"
    log "creating .venv with $("$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    "$py" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
UV=("$PY" "$ROOT/scripts/setup/uv_install.py" -q)

# --- fast path: nothing changed since the last successful setup --------------
stamp_inputs=$(cat pyproject.toml scripts/setup/setup_env.sh scripts/setup/patch_mmcv.py scripts/setup/check_mmcv.py scripts/setup/uv_install.py; echo "$TORCH_SPEC $CARDD_OPS ${FORCE_CUDA:-} ${TORCH_CUDA_ARCH_LIST:-}")
stamp_hash=$(printf '%s' "$stamp_inputs" | sha256sum | cut -c1-16)
STAMP="$VENV/.cardd-setup-$stamp_hash"
if [[ -f "$STAMP" ]] && "$PY" -c "import cardd, mmcv.ops, mmdet" >/dev/null 2>&1; then
    log "up to date ($("$PY" -c 'import sys; print(sys.executable)'))"
    exit 0
fi

# --- 2. uv ---------------------------------------------------------------------
[[ -x "$VENV/bin/uv" ]] || "${PIP[@]}" install -q 'uv>=0.5' || die "could not install uv with pip"
build_tools=()  # the default route builds nothing
[[ "$CARDD_OPS" == compiled ]] && build_tools=('setuptools>=77.0.3,<82' wheel ninja)

# --- 3. mmcv: the mmcv-lite wheel (default), or built from its sdist with ops --
fetch_source() {  # mmcv's sdist, extracted and patched, into a fresh temporary folder
    work=$(mktemp -d "${TMPDIR:-/tmp}/cardd-mmcv.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    "$PY" "$ROOT/scripts/setup/fetch_sdist.py" mmcv "$MMCV_VERSION" "$work"
    tar -xzf "$work"/mmcv-"$MMCV_VERSION".tar.gz -C "$work"
    src="$work/mmcv-$MMCV_VERSION"
    "$PY" "$ROOT/scripts/setup/patch_mmcv.py" "$src" || die "patching mmcv's source failed"
}
cache_wheel() {  # copy then rename, so a killed setup never leaves half a wheel in the cache
    mkdir -p "$wheel_dir"
    built=$(ls "$work"/dist/mmcv_lite-*.whl)
    cp "$built" "$wheel_dir/.partial.whl"
    mv "$wheel_dir/.partial.whl" "$wheel_dir/$(basename "$built")"
    wheel="$wheel_dir/$(basename "$built")"
}
patch_level=$("$PY" -c "import runpy; print(runpy.run_path('$ROOT/scripts/setup/patch_mmcv.py')['PATCH_LEVEL'])")
want_cuda=0
wheel=()
if [[ "$CARDD_OPS" == compiled ]]; then
    # Compiled against this torch: the wheel is keyed by torch, Python and CPU/CUDA.
    # shellcheck disable=SC2086
    "${UV[@]}" "${build_tools[@]}" $TORCH_SPEC || die "installing torch failed"
    read -r torch_version has_cuda cuda_version pytag < <("$PY" -c '
import sys, torch
print(torch.__version__.split("+")[0], int(torch.cuda.is_available()), torch.version.cuda or "-",
      f"cp{sys.version_info.major}{sys.version_info.minor}")')
    if [[ "${FORCE_CUDA:-0}" == "1" || "$has_cuda" == 1 ]]; then
        variant="cuda$cuda_version-sm${TORCH_CUDA_ARCH_LIST:-native}"
        want_cuda=1
    else
        variant=cpu
    fi
    key="mmcv-$MMCV_VERSION-$pytag-torch$torch_version-${variant// /_}-cardd$patch_level"
    export FORCE_CUDA=$want_cuda
    wheel_dir="$CACHE/wheels/$key"
    found=$(ls "$wheel_dir"/mmcv_lite-*.whl 2>/dev/null | head -n1 || true)
    if [[ -z "$found" ]]; then
        log "no cached mmcv wheel for $key: building from source (CPU ops: ~17 min on 2 cores; CUDA ops: ~4 min on 16)"
        fetch_source
        export MAX_JOBS=${MAX_JOBS:-$(nproc)}
        (cd "$src" && MMCV_WITH_OPS=1 "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$work/dist" .) \
            || die "mmcv build failed (see the compiler output above)"
        cache_wheel
        found=$wheel
    else
        log "using cached mmcv wheel $found"
    fi
    wheel=("$found")
fi

# --- 4. everything in one resolution: torch, mmcv-lite, the stack, cardd -------
# An `mmcv` distribution from an earlier setup owns the same files as mmcv-lite.
"${PIP[@]}" uninstall -y -q mmcv >/dev/null 2>&1 || true
# shellcheck disable=SC2086
"${UV[@]}" "${build_tools[@]}" $TORCH_SPEC "${wheel[@]}" --reinstall-package mmcv-lite -e ".[test]" \
    || die "installing torch, mmcv-lite and cardd's dependencies failed"
mmcv_dir=$("$PY" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("mmcv").origin))')
rm -f "$mmcv_dir/_ext.py"  # a kernel module an earlier setup wrote into mmcv: cardd registers its own

# --- 5. verify: the kernels asked for, and mmdet's models import with them -----
"$PY" "$ROOT/scripts/setup/check_mmcv.py" "$MMCV_VERSION" "$CARDD_OPS" "$want_cuda" "$patch_level" --report \
    || die "mmcv $MMCV_VERSION lacks the $CARDD_OPS kernels asked for (CUDA: $want_cuda) or mmdet does not load with them: delete \$CARDD_CACHE/wheels/mmcv-* and rerun"
rm -f "$VENV"/.cardd-setup-*
touch "$STAMP"
log "done in ${SECONDS} s: activate with 'source .venv/bin/activate' or run '.venv/bin/cardd'"
