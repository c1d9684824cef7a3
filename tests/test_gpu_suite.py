"""benchmarks/gpu_suite.sh at toy size on the CPU (--toy), so that the GPU run is not its first: it runs
every benchmark of the suite and its last line is one JSON object whose figures are its parts' own."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_suite_toy_run_combines_its_benchmarks_into_one_json_line(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / 'suite'), PY=sys.executable)
    done = subprocess.run(['bash', str(ROOT / 'benchmarks' / 'gpu_suite.sh'), '--toy'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    raw = result['raw']
    assert result['benchmark'] == 'gpu_suite' and result['device'] == 'cpu'
    assert raw['train_step_amp_on']['quick'] and raw['dump_throughput']['views'] == 1
    t_on, t_off = raw['train_step_amp_on']['students']['t'], raw['train_step_amp_off']['students']['t']
    assert result['P1_offline_over_supervised'] == {'t': t_on['ratios']['offline_over_supervised']}
    assert result['P2_offline_over_online'] == {'t': t_on['ratios']['offline_over_online']}
    assert result['amp_on_over_off_images_per_s']['t']['offline'] == pytest.approx(
        t_on['modes']['offline']['images_per_s'] / t_off['modes']['offline']['images_per_s'], rel=1e-3)
    assert result['P3_dump_over_forward_only'] == raw['dump_throughput']['ratio'] > 0
    assert isinstance(result['under_10_minutes'], bool) and result['seconds'] > 0


def test_gpu_suite_refuses_an_unknown_argument():
    done = subprocess.run(['bash', str(ROOT / 'benchmarks' / 'gpu_suite.sh'), '--tiny'], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown argument '--tiny'" in done.stderr
