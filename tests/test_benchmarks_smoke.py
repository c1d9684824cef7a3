"""Smoke test of benchmarks/train_step.py: a --quick run ends with one JSON line holding every figure."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_step_quick():
    out = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'train_step.py'), '--quick',
                          '--students', 't', '--device', 'cpu'],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    for key in ('device', 'device_name', 'torch', 'batch', 'students', 'all_goals_met'):
        assert key in result
    assert result['batch'] == 4
    t = result['students']['t']
    for mode in ('supervised', 'offline', 'online'):
        figures = t['modes'][mode]
        assert figures['median_step_s'] > 0 and figures['images_per_s'] > 0
        assert figures['steps_timed'] == 2
    assert set(t['ratios']) == {'offline_over_supervised', 'offline_over_online'}
    assert t['goals']['offline_over_online']['goal'] == 4.0
    assert isinstance(t['goals']['offline_over_online']['met'], bool)
