"""Smoke tests of the benchmarks: a --quick or toy-size run ends with one JSON line holding every figure."""
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


@pytest.mark.slow
def test_cache_scale_toy_size(tmp_path):
    """benchmarks/cache_scale.py at a toy size: writer and reader run, the files are counted, the full-size
    figures are the measured ones scaled by the instances."""
    out = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'cache_scale.py'), '--instances', '200',
                          '--fraction', '0.5', '--views', '2', '--chunk-size', '32', '--views-read', '1',
                          '--batch', '16', '--batches', '2', '--root', str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result['instances'] == 100 and result['encoding']['levels'] > 0
    assert result['write_mb_s'] > 0 and result['plane_read_mb_s'] > 0 and result['reconstruct_rows_s'] > 0
    assert result['writer_peak_rss_mb'] > 0 and result['reader_peak_rss_mb'] > 0
    # 4 chunks x 2 views x 2 teachers x 12 unit arrays at most; the whole-row windows' starts are all
    # fill value and never written
    assert 0 < result['unit_files'] < result['unit_files_at_most'] == 4 * 2 * 2 * 12
    assert result['files'] > result['unit_files']
    assert result['full']['stored_gb'] == pytest.approx(result['stored_gb'] * 2)
    assert result['full']['sharding_needed'] is False
    assert list(tmp_path.iterdir()) == []  # the temp cache is removed
