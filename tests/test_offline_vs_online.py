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


def test_run_columns_read_a_run_folders_last_val_record_in_percent(tmp_path):
    """What offline_vs_online and views_trade tabulate, from a run folder's log as training writes it."""
    from benchmarks.offline_vs_online import COLUMNS
    from benchmarks.overlap_modes import run_columns
    from data.skeletons import derive_union
    from pipeline.run_folder import RunFolder
    union = derive_union(('coco', 'mpii'))
    folder = RunFolder(tmp_path)
    truth = dict(all=0.5, annotated=0.6, lacking=0.25, per_joint=[0.5] * 21, counts=[10] * 21)
    folder.log({'epoch': 1, 'val': {'coco': {'pck_truth': dict(truth, all=0.1), 'coco': {'AP': 0.01}}}})
    folder.log({'epoch': 2, 'val': {'coco': {'pck_truth': truth, 'coco': {'AP': 0.2}},
                                    'mpii': {'pck_truth': truth, 'pckh@0.5': {'mean': 0.4}}}})
    got = run_columns(folder, union, COLUMNS)
    assert got == pytest.approx({'coco AP': 20.0, 'mpii PCKh': 40.0, 'coco pck_own': 60.0, 'coco pck_missing': 25.0,
                                 'coco pck_all': 50.0, 'mpii pck_own': 60.0, 'mpii pck_missing': 25.0,
                                 'mpii pck_all': 50.0})
    folder.log({'epoch': 3, 'val': {'coco': {'pck_truth': truth}}})  # a run scored on COCO only
    assert run_columns(folder, union, [('coco', 'AP'), ('mpii', 'PCKh')]) == {'coco AP': None, 'mpii PCKh': None}
