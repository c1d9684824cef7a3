"""The offline-vs-online benchmark's arithmetic: paired deltas, their standard error, the noise floor."""
import math

import pytest

from benchmarks.offline_vs_online import checks, paired


def test_paired_deltas_standard_error_and_noise_floor():
    online = {0: {'coco pck_all': 60.0, 'mpii pck_all': 40.0}, 1: {'coco pck_all': 64.0, 'mpii pck_all': 44.0}}
    offline = {0: {'coco pck_all': 61.0, 'mpii pck_all': 38.0}, 1: {'coco pck_all': 63.0, 'mpii pck_all': 44.0}}
    t = paired(online, offline)
    assert t['coco pck_all']['deltas'] == [1.0, -1.0]
    assert t['coco pck_all']['delta'] == 0.0
    assert t['coco pck_all']['delta_se'] == pytest.approx(math.sqrt(2) / math.sqrt(2))  # sd of (+1, -1) is sqrt 2
    assert t['coco pck_all']['noise_floor'] == pytest.approx(math.sqrt(8))  # sd of (60, 64)
    assert t['mpii pck_all']['delta'] == -1.0 and t['mpii pck_all']['online'] == 42.0
    c = checks(t)
    assert c['within_noise'] is True
    assert c['all21_not_below_online_minus_half'] is False  # mpii: mean delta -1.0


def test_a_column_missing_from_a_run_is_left_out_and_one_seed_has_no_floor():
    t = paired({0: {'coco AP': 20.0, 'mpii PCKh': None}}, {0: {'coco AP': 21.0, 'mpii PCKh': 30.0}})
    assert list(t) == ['coco AP']
    assert t['coco AP']['noise_floor'] is None and t['coco AP']['delta_se'] is None
    assert checks(t) == dict(within_noise=True, all21_not_below_online_minus_half=True)
