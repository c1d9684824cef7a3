"""The views-trade benchmark's arms and arithmetic: every arm paired with online_fresh by seed."""
import math

import pytest

from benchmarks.views_trade import REFERENCE, arms, paired


def test_arms_cover_views_mirror_and_the_references_in_priority_order():
    a = arms(20)
    assert list(a)[:3] == ['offline_v4', 'offline_v20', REFERENCE]
    assert a[REFERENCE] == ('online', 20, False)
    offline = {(v, m) for mode, v, m in a.values() if mode == 'offline'}
    assert offline == {(v, m) for v in (1, 2, 4, 8, 20) for m in (True, False)}
    assert {(v, m) for mode, v, m in a.values() if mode == 'supervised'} == {(4, False), (20, False)}


def test_paired_to_online_fresh_uses_the_seeds_both_ran():
    col = 'mpii pck_missing'
    row = {c: 50.0 for c in ('coco pck_missing', 'coco pck_all', 'mpii pck_all', 'coco AP', 'mpii PCKh')}
    results = {REFERENCE: {0: {**row, col: 70.0}, 1: {**row, col: 74.0}, 2: {**row, col: 72.0}},
               'offline_v4': {0: {**row, col: 68.0}, 1: {**row, col: 74.0}},
               'offline_v1': {0: {**row, col: 60.0}}}
    t = paired(results, 'offline_v4')
    assert t[col]['seeds'] == [0, 1] and t[col]['delta'] == -1.0 and t[col]['mean'] == 71.0
    assert t[col]['delta_se'] == pytest.approx(math.sqrt(2) / math.sqrt(2))  # deltas -2, 0
    one = paired(results, 'offline_v1')
    assert one[col]['delta'] == -10.0 and one[col]['delta_se'] is None
