"""tests/pipeline/test_recipe.py's RECORDED values are what mmpose's own RTMPose-s config says today:
scripts/mmpose_reference.py recipe reads configs/body_2d_keypoint/rtmpose/coco/rtmpose-s_8xb256-420e_coco-256x192.py
from the installed mmpose (its packaged configs) and the defaults of the transforms it names."""
import json
import subprocess

import pytest

from tests.conftest import MMPOSE_PYTHON, ROOT, require_mmpose_reference
from tests.pipeline.test_recipe import RECORDED

pytestmark = pytest.mark.parity


def test_recorded_recipe_is_what_mmpose_configures():
    require_mmpose_reference()
    run = subprocess.run([str(MMPOSE_PYTHON), str(ROOT / 'scripts' / 'mmpose_reference.py'), 'recipe'],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    derived = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(derived) == set(RECORDED)
    for key, want in RECORDED.items():
        got = derived[key]
        number = isinstance(want, (int, float)) and not isinstance(want, bool)
        assert (got == pytest.approx(want) if number else got == want), f'{key}: mmpose {got!r}, recorded {want!r}'
