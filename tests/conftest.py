import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Real COCO / MPII sample files live beside the repository (never committed).
REAL_SAMPLES = Path(os.environ.get('REAL_SAMPLES', ROOT.parent / 'shared' / 'real_samples'))

# The mmpose reference environment (scripts/install_mmpose_reference.sh); parity-style tests use it.
# The configs' union: COCO's 17 joints, then MPII's pelvis, thorax, upper_neck, head_top.
def _coco_mpii():
    from data.skeletons import derive_union
    return derive_union(('coco', 'mpii'))


COCO_MPII = _coco_mpii()

MMPOSE_PYTHON = Path(os.environ.get('MMPOSE_REF_PYTHON', ROOT / '.venv-mmpose' / 'bin' / 'python'))


def require_mmpose_reference():
    """Skip when the reference environment is missing, or fail under PARITY_REQUIRED=1 (make test-parity)."""
    import subprocess

    import pytest
    ok = MMPOSE_PYTHON.exists() and subprocess.run(
        [str(MMPOSE_PYTHON), '-c', 'import mmpose, mmcv'], capture_output=True, timeout=120).returncode == 0
    if not ok:
        reason = f'mmpose reference environment not available at {MMPOSE_PYTHON}'
        if os.environ.get('PARITY_REQUIRED') == '1':
            pytest.fail(f'PARITY_REQUIRED=1 but {reason}')
        pytest.skip(reason)
