import contextlib
import io
import json
import subprocess
import textwrap

import numpy as np
import pytest

from data.skeletons import COCO17, COCO17_SIGMAS, MPII16_NAMES, union_mask
from tests.conftest import COCO_MPII
from outputs.evaluate import (OKS_THRESHOLDS, build_coco_gt, coco_keypoint_eval, mpii_pckh_table, oks_matrix,
                              oks_nms, pck_union, pckh, predictions_to_coco_results, topdown_instance_areas,
                              topdown_rescore, write_coco_results)
from tests.conftest import MMPOSE_PYTHON, REAL_SAMPLES, ROOT, require_mmpose_reference

COCO_SAMPLE = REAL_SAMPLES / 'coco' / 'annotations' / 'person_keypoints_sample.json'


def _person(rng, cx, cy, size):
    return np.stack([cx + rng.uniform(-size / 3, size / 3, 17), cy + rng.uniform(-size / 2, size / 2, 17)], 1)


def _gt_file(tmp_path, people, areas, image_ids):
    """A hand-made COCO GT json: every joint visible, boxes around the joints."""
    kpts = np.stack(people)
    boxes = np.concatenate([kpts.min(1) - 5, kpts.max(1) + 5], 1)
    gt = build_coco_gt(np.asarray(image_ids), kpts, np.ones(kpts.shape[:2]), boxes, np.asarray(areas))
    path = tmp_path / 'gt.json'
    path.write_text(json.dumps(gt))
    return path, kpts


def _results(kpts, image_ids, scores=None):
    scores = np.ones(len(kpts)) if scores is None else scores
    return [{'image_id': int(i), 'category_id': 1,
             'keypoints': np.concatenate([k, np.ones((17, 1))], 1).ravel().tolist(), 'score': float(s)}
            for k, i, s in zip(kpts, image_ids, scores)]


def test_perfect_predictions_give_ap_one(tmp_path):
    rng = np.random.default_rng(0)
    people = [_person(rng, 100, 100, 80), _person(rng, 300, 120, 120), _person(rng, 150, 200, 90)]
    path, kpts = _gt_file(tmp_path, people, [80 * 120, 120 * 180, 90 * 135], [1, 1, 2])
    stats = coco_keypoint_eval(path, _results(kpts, [1, 1, 2]))
    assert stats['AP'] == pytest.approx(1.0)
    assert stats['AR'] == pytest.approx(1.0)
    assert stats['AP50'] == pytest.approx(1.0)


def test_shifted_prediction_ap_is_fraction_of_thresholds_passed(tmp_path):
    rng = np.random.default_rng(1)
    area = 150.0 * 220.0  # large person: APl == AP, no medium person: APm == -1
    path, kpts = _gt_file(tmp_path, [_person(rng, 200, 200, 150)], [area], [7])
    # every joint moved by d pixels: OKS = mean_j exp(-d^2 / (2 * area * (2 sigma_j)^2))
    d = 11.0
    oks = np.mean(np.exp(-d ** 2 / (2 * area * (2 * COCO17_SIGMAS.astype(np.float64)) ** 2)))
    assert np.min(np.abs(OKS_THRESHOLDS - oks)) > 0.01, 'pick d so OKS sits between two thresholds'
    expected_ap = np.mean(oks >= OKS_THRESHOLDS)
    assert 0 < expected_ap < 1
    shifted = kpts + d * np.array([0.6, 0.8])
    stats = coco_keypoint_eval(path, _results(shifted, [7]))
    assert stats['AP'] == pytest.approx(expected_ap)
    assert stats['AR'] == pytest.approx(expected_ap)
    assert stats['AP50'] == pytest.approx(float(oks >= 0.5))
    assert stats['AP75'] == pytest.approx(float(oks >= 0.75))
    assert stats['APl'] == pytest.approx(expected_ap)
    assert stats['APm'] == -1
    # the pairwise OKS helper (mmpose's form, mean of the two areas) agrees when both areas are equal
    assert oks_matrix(shifted, [area], kpts, [area])[0, 0] == pytest.approx(oks, rel=1e-9)


def test_empty_results_score_zero(tmp_path):
    rng = np.random.default_rng(2)
    path, _ = _gt_file(tmp_path, [_person(rng, 200, 200, 150)], [150.0 * 220.0], [3])
    stats = coco_keypoint_eval(path, [])
    assert stats['AP'] == 0 and stats['AR'] == 0


def test_unknown_image_id_is_a_clear_error(tmp_path):
    rng = np.random.default_rng(3)
    path, kpts = _gt_file(tmp_path, [_person(rng, 200, 200, 150)], [150.0 * 220.0], [3])
    with pytest.raises(ValueError, match='image_id 99'):
        coco_keypoint_eval(path, _results(kpts, [99]))


def _noisy_results(gt, rng):
    results = []
    for ann in gt['annotations']:
        if ann['num_keypoints'] == 0:
            continue
        k = np.asarray(ann['keypoints'], np.float64).reshape(17, 3)
        for _ in range(2):  # a good and a worse copy, random scores
            noisy = k[:, :2] + rng.normal(0, rng.uniform(1, 12), (17, 2))
            results.append({'image_id': ann['image_id'], 'category_id': 1, 'score': float(rng.uniform()),
                            'keypoints': np.concatenate([noisy, np.ones((17, 1))], 1).ravel().tolist()})
    return results


@pytest.mark.skipif(not COCO_SAMPLE.is_file(), reason=f'real COCO sample missing: {COCO_SAMPLE}')
def test_real_coco_sample_gt_as_prediction_gives_ap_one():
    gt = json.loads(COCO_SAMPLE.read_text())
    results = [{'image_id': a['image_id'], 'category_id': 1, 'keypoints': a['keypoints'], 'score': 1.0}
               for a in gt['annotations'] if a['num_keypoints'] > 0]
    assert results
    stats = coco_keypoint_eval(COCO_SAMPLE, results)
    assert stats['AP'] == pytest.approx(1.0)
    assert stats['AR'] == pytest.approx(1.0)


@pytest.mark.skipif(not COCO_SAMPLE.is_file(), reason=f'real COCO sample missing: {COCO_SAMPLE}')
def test_matches_cocoeval_run_directly(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = json.loads(COCO_SAMPLE.read_text())
    results = _noisy_results(gt, np.random.default_rng(4))
    res_file = write_coco_results(tmp_path / 'results' / 'keypoints.json', results)
    assert not list(res_file.parent.glob('*.tmp'))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(COCO_SAMPLE))
        ev = COCOeval(coco, coco.loadRes(str(res_file)), 'keypoints')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ours = coco_keypoint_eval(COCO_SAMPLE, json.loads(res_file.read_text()))
    assert 0 < ours['AP'] < 1
    np.testing.assert_allclose(list(ours.values()), ev.stats, atol=1e-12)


def test_topdown_rescore_mmpose_convention():
    kpt_scores = np.array([[0.9, 0.1, 0.5, 0.2], [0.1, 0.05, 0.0, 0.2]])
    scores = topdown_rescore(kpt_scores, np.array([0.5, 1.0]), thr=0.2)
    # row 0: joints above 0.2 (strict) are 0.9 and 0.5; row 1: none -> 0
    np.testing.assert_allclose(scores, [0.5 * (0.9 + 0.5) / 2, 0.0])


def test_oks_nms_drops_duplicates_keeps_distinct_people():
    rng = np.random.default_rng(5)
    a = _person(rng, 100, 100, 80)
    b = _person(rng, 400, 100, 80)
    kpts = np.stack([a, a + 0.5, b, a + 40])  # 1 duplicates 0; 3 is far enough to be someone else
    scores = np.array([0.8, 0.9, 0.7, 0.6])
    areas = np.full(4, 80.0 * 120.0)
    keep = oks_nms(kpts, scores, areas, thr=0.9)
    assert keep.tolist() == [1, 2, 3]
    assert oks_nms(kpts[:0], scores[:0], areas[:0]).tolist() == []


def test_predictions_to_coco_results_groups_scores_and_nms():
    rng = np.random.default_rng(6)
    a = _person(rng, 100, 100, 80)
    kpts = np.stack([a, a + 0.5, _person(rng, 100, 100, 80)])
    kpt_scores = np.full((3, 17), 0.8)
    res = predictions_to_coco_results(np.array([5, 5, 2]), kpts, kpt_scores, np.array([1.0, 0.5, 1.0]),
                                      np.full(3, 9600.0), use_nms=True)
    assert [r['image_id'] for r in res] == [2, 5]  # the duplicate on image 5 is gone
    assert res[1]['score'] == pytest.approx(0.8)
    assert len(res[0]['keypoints']) == 51
    np.testing.assert_allclose(np.reshape(res[1]['keypoints'], (17, 3))[:, :2], a)
    no_nms = predictions_to_coco_results(np.array([5, 5, 2]), kpts, kpt_scores, np.array([1.0, 0.5, 1.0]),
                                         np.full(3, 9600.0), use_nms=False)
    assert len(no_nms) == 3


def test_pckh_hand_made_distances():
    head = np.array([20.0, 40.0])
    gt = np.zeros((2, 16, 2))
    pred = gt.copy()
    # instance 0 (head 20): distance 9 on even joints (< 0.5*20), 11 on odd joints (>= 10)
    pred[0, :, 0] = np.where(np.arange(16) % 2 == 0, 9.0, 11.0)
    # instance 1 (head 40): every joint 19 px away (< 20) except head_top at 25
    pred[1, :, 1] = 19.0
    pred[1, MPII16_NAMES.index('head_top'), 1] = 25.0
    visible = np.ones((2, 16))
    visible[1, MPII16_NAMES.index('left_wrist')] = 0
    res = pckh(pred, gt, visible, head, thr=0.5)
    expected = np.array([(1.0 if j % 2 == 0 else 0.0) + 1.0 for j in range(16)]) / 2
    expected[MPII16_NAMES.index('head_top')] -= 0.5
    lw = MPII16_NAMES.index('left_wrist')
    expected[lw] = 1.0 if lw % 2 == 0 else 0.0  # only instance 0 counts
    np.testing.assert_allclose(res['per_joint'], expected)
    counts = np.full(16, 2)
    counts[lw] = 1
    np.testing.assert_array_equal(res['counts'], counts)
    keep = [j for j, n in enumerate(MPII16_NAMES) if n not in ('pelvis', 'thorax')]
    assert res['mean'] == pytest.approx(np.sum(expected[keep] * counts[keep]) / counts[keep].sum())
    sh = [MPII16_NAMES.index('left_shoulder'), MPII16_NAMES.index('right_shoulder')]
    assert res['groups']['Shoulder'] == pytest.approx(expected[sh].mean())
    # at 0.1 nothing is within 2 px / 4 px
    table = mpii_pckh_table(pred, gt, visible, head)
    assert table['Mean@0.1'] == 0 and table['Mean'] == pytest.approx(res['mean'])
    # pelvis and thorax do not move the mean
    pred2 = pred.copy()
    pred2[:, [MPII16_NAMES.index('pelvis'), MPII16_NAMES.index('thorax')]] = 1e4
    assert pckh(pred2, gt, visible, head)['mean'] == pytest.approx(res['mean'])


def test_pckh_rejects_unknown_head_size():
    with pytest.raises(ValueError, match='unknown'):
        pckh(np.zeros((1, 16, 2)), np.zeros((1, 16, 2)), np.ones((1, 16)), np.array([np.nan]))


def test_pck_union_split_annotated_and_lacking():
    n = 3
    truth = np.zeros((n, 21, 2))
    pred = truth.copy()
    coco_mask = union_mask(COCO17, COCO_MPII)  # the 17 COCO joints annotated, the 4 MPII-only joints lacking
    pred[:, ~coco_mask, 0] = 30.0  # lacking joints all wrong (norm 20, thr 0.5 -> 10 px)
    pred[0, 0, 0] = 15.0  # one annotated joint wrong
    visible = np.ones((n, 21))
    visible[2, 1] = 0  # one annotated joint not counted
    res = pck_union(pred, truth, visible, np.full(n, 20.0), coco_mask, thr=0.5)
    n_ann = n * 17 - 1
    assert res['annotated'] == pytest.approx((n_ann - 1) / n_ann)
    assert res['lacking'] == 0.0
    assert res['all'] == pytest.approx((n_ann - 1) / (n_ann + n * 4))
    assert res['n_annotated'] == n_ann and res['n_lacking'] == n * 4
    assert res['per_joint'][0] == pytest.approx(2 / 3)
    assert np.all(res['per_joint'][~coco_mask] == 0)
    # a per-instance mask (N,21) gives the same split as the broadcast (21,) one
    per_row = pck_union(pred, truth, visible, np.full(n, 20.0), np.tile(coco_mask, (n, 1)), thr=0.5)
    assert per_row['annotated'] == res['annotated'] and per_row['lacking'] == res['lacking']
    assert COCO_MPII.num_joints == res['per_joint'].shape[0]
    with pytest.raises(ValueError, match='as the truth'):
        pck_union(pred[:, :19], truth, visible, np.full(n, 20.0), coco_mask)


def test_topdown_instance_areas_pad_then_fix_aspect():
    # 40x100 box, padded x1.25 -> 50x125; input 192x256 (aspect .75): too narrow -> width 93.75
    # 100x40 box -> 125x50: too wide -> height 125/.75
    areas = topdown_instance_areas(np.array([[0, 0, 40, 100], [10, 10, 110, 50]]), (192, 256))
    np.testing.assert_allclose(areas, [93.75 * 125, 125 * (125 / 0.75)])


MMPOSE_PARITY = textwrap.dedent('''
    import numpy as np
    from mmengine.registry import init_default_scope
    init_default_scope('mmpose')
    from mmpose.evaluation.functional.nms import oks_nms as mm_oks_nms
    from mmpose.evaluation.metrics.keypoint_2d_metrics import MpiiPCKAccuracy
    from data.skeletons import COCO17_SIGMAS
    from outputs.evaluate import oks_nms, mpii_pckh_table
    rng = np.random.default_rng(0)
    for trial in range(30):
        m = rng.integers(1, 12)
        base = rng.uniform(0, 300, (3, 17, 2))
        k = base[rng.integers(0, 3, m)] + rng.normal(0, rng.uniform(0.5, 15), (m, 17, 2))
        s, a = rng.uniform(size=m), rng.uniform(2000, 20000, m)
        db = [dict(keypoints=np.concatenate([k[i], np.ones((17, 1))], 1), score=s[i], area=a[i]) for i in range(m)]
        ref = list(mm_oks_nms(db, 0.9, sigmas=COCO17_SIGMAS.astype(np.float64)))
        assert list(oks_nms(k, s, a, 0.9)) == ref, (ref, oks_nms(k, s, a, 0.9))
    n = 200
    gt = rng.uniform(0, 300, (n, 16, 2))
    head = rng.uniform(20, 60, n)
    pred = gt + rng.normal(0, 1, (n, 16, 2)) * head[:, None, None] * rng.uniform(0.05, 0.6, (n, 16, 1))
    vis = rng.uniform(size=(n, 16)) > 0.2
    # mmpose adds 1 to predictions (MPII json joints are 1-based): feed it pred - 1
    ref = MpiiPCKAccuracy(norm_item='head', prefix='mpii').compute_metrics(
        [dict(pred_coords=pred[i:i + 1] - 1.0, gt_coords=gt[i:i + 1], mask=vis[i:i + 1],
              head_size=np.array([[head[i], head[i]]])) for i in range(n)])
    ours = mpii_pckh_table(pred, gt, vis, head)
    for name in ('Head', 'Shoulder', 'Elbow', 'Wrist', 'Hip', 'Knee', 'Ankle'):
        assert abs(float(ref[name + ' PCK']) - 100 * ours[name]) < 1e-6, name
    assert abs(float(ref['PCK']) - 100 * ours['Mean']) < 1e-6
    assert abs(float(ref['PCK@0.1']) - 100 * ours['Mean@0.1']) < 1e-4  # mmpose sums float32 here
    print('parity ok')
''')


@pytest.mark.parity
def test_oks_nms_and_pckh_match_mmpose(tmp_path):
    """Same kept indices as mmpose's oks_nms, same MPII table as MpiiPCKAccuracy (reference env)."""
    require_mmpose_reference()
    script = tmp_path / 'parity.py'
    script.write_text(MMPOSE_PARITY)
    run = subprocess.run([str(MMPOSE_PYTHON), str(script)], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={'PYTHONPATH': str(ROOT), 'PATH': '/usr/bin:/bin'})
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'parity ok' in run.stdout
