#!/usr/bin/env bash
# Build the mmpose reference stack (mmpose 1.3.2 + mmcv 2.1.0 + mmdet 3.3.0) into its own venv.
# Used only by the parity tests and benchmarks; the product never imports mmpose.
# Recipe: mmcv 2.1.0 compiled from source with ops (setuptools<70; mmdet 3.3 refuses mmcv 2.2), mmpose/mmdet
# with --no-deps (chumpy does not build), xtcocotools built from source against numpy 2.
# The first build compiles mmcv (about 12 min on 2 cores); pip's wheel cache makes later builds fast.
set -euo pipefail
VENV=${MMPOSE_REF_VENV:-.venv-mmpose}
PY=${PYTHON:-python3.11}
check='from mmengine.registry import init_default_scope; init_default_scope("mmpose"); import mmpose.models, mmpose.codecs, mmcv.ops'
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "$check" 2>/dev/null; then
    echo "mmpose reference environment ready: $VENV"; exit 0
fi
start=$(date +%s)
"$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --upgrade pip
pip install -q torch==2.13.0
pip install -q 'setuptools<70' wheel ninja cython numpy packaging
pip install -q mmengine==0.10.7 opencv-python addict pyyaml yapf pillow matplotlib scipy \
    json_tricks munkres pycocotools shapely six terminaltables tqdm rich termcolor
MMCV_WITH_OPS=1 pip install --no-build-isolation mmcv==2.1.0
pip install -q --no-binary xtcocotools --no-build-isolation xtcocotools
pip install -q --no-deps mmpose==1.3.2 mmdet==3.3.0
"$VENV/bin/python" -c "$check"
echo "mmpose reference environment built in $(( $(date +%s) - start )) s: $VENV"
