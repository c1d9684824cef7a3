"""Synthetic twins: determinism, real-format files, and truth that agrees with every annotation."""
import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from data.truth import load_truth, truth_rows
from data.twins import make_synthetic
from data.twins.figure import COCO_STYLE, MPII_STYLE, layout_figure, sample_body, sample_pose
from data.twins.render import face_point_visible
from data.instances import InstanceTable
from data.skeletons import AIC14, COCO17, MPII16, TWIN_FIGURE, union_indices

UNION21_NAMES = TWIN_FIGURE.joint_names  # the figure's joints: COCO's 17, then MPII's 4 others

N_IMAGES = 20
SEED = 3


@pytest.fixture(scope='module')
def twins(tmp_path_factory):
    out = tmp_path_factory.mktemp('synthetic')
    summary = make_synthetic(out, n_images=N_IMAGES, seed=SEED, val_fraction=0.25, image_size=(240, 200))
    return out, summary


def match_truth(table: InstanceTable, truth: dict, mask: str = 'visible') -> tuple[np.ndarray, np.ndarray]:
    """Truth keypoints (N, K, 2) and a (N, K) bool mask ('visible' or 'in_image') for each
    table row, matched by instance_key. Raises if a row has no truth."""
    if mask not in ('visible', 'in_image'):
        raise ValueError(f"mask must be 'visible' or 'in_image', got {mask!r}")
    rows = truth_rows(table, truth)
    return truth['keypoints'][rows], truth[mask][rows].astype(bool)


def _files(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(twins, tmp_path):
    out, _ = twins
    make_synthetic(tmp_path / 'again', n_images=N_IMAGES, seed=SEED, val_fraction=0.25, image_size=(240, 200))
    first, again = _files(out), _files(tmp_path / 'again')
    assert first.keys() == again.keys()
    for name in first:
        assert first[name] == again[name], f'{name} differs between two runs with the same seed'
    pixels = cv2.imread(str(out / 'coco/images/train/000000000001.jpg'))
    assert pixels.shape == (200, 240, 3)
    pixel_hash = hashlib.sha256(pixels.tobytes()).hexdigest()
    assert pixel_hash == hashlib.sha256(cv2.imread(str(tmp_path / 'again/coco/images/train/000000000001.jpg'))
                                        .tobytes()).hexdigest()
    make_synthetic(tmp_path / 'other', n_images=2, seed=SEED + 1, styles=('coco',), image_size=(240, 200))
    other = cv2.imread(str(tmp_path / 'other/coco/images/train/000000000001.jpg'))
    assert hashlib.sha256(other.tobytes()).hexdigest() != pixel_hash


def test_layout_and_split_sizes(twins):
    out, summary = twins
    n_val = round(N_IMAGES * 0.25)
    for style in ('coco', 'mpii'):
        assert summary[style]['train']['images'] == N_IMAGES - n_val
        assert summary[style]['val']['images'] == n_val
    assert len(list((out / 'coco/images/train').glob('*.jpg'))) == N_IMAGES - n_val
    assert len(list((out / 'coco/images/val').glob('*.jpg'))) == n_val
    assert len(list((out / 'mpii/images').glob('*.jpg'))) == N_IMAGES
    for name in ('person_keypoints_train.json', 'person_keypoints_val.json', 'truth_train.npz', 'truth_val.npz'):
        assert (out / 'coco/annotations' / name).is_file()
    for name in ('mpii_train.json', 'mpii_val.json', 'mpii_gt_val.mat', 'truth_train.npz', 'truth_val.npz'):
        assert (out / 'mpii/annotations' / name).is_file()
    assert not list(out.rglob('*.tmp*')), 'temporary files left behind'


@pytest.mark.parametrize('split', ['train', 'val'])
def test_coco_json_is_real_format_and_matches_truth(twins, split):
    from pycocotools.coco import COCO
    out, summary = twins
    ann_file = out / f'coco/annotations/person_keypoints_{split}.json'
    coco = COCO(str(ann_file))
    assert coco.loadCats(1)[0]['keypoints'] == list(COCO17.joint_names)
    assert len(coco.getImgIds()) == summary['coco'][split]['images']
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == summary['coco'][split]['instances'] > 0
    truth = load_truth(out / f'coco/annotations/truth_{split}.npz')
    rows = {int(k): i for i, k in enumerate(truth['instance_key'])}
    assert len(rows) == len(anns)
    for ann in anns:
        img = coco.loadImgs(ann['image_id'])[0]
        assert (out / f'coco/images/{split}' / img['file_name']).is_file()
        kp = np.array(ann['keypoints'], float).reshape(17, 3)  # exactly 17 joints, nothing of the MPII ones
        i = rows[ann['id']]
        assert truth['image_id'][i] == ann['image_id']
        v = kp[:, 2]
        assert set(np.unique(v)) <= {0, 1, 2}
        assert ann['num_keypoints'] == int((v > 0).sum())
        np.testing.assert_allclose(kp[v > 0, :2], truth['keypoints'][i, :17][v > 0], atol=0.01)
        assert np.all(kp[v == 0, :2] == 0)
        np.testing.assert_array_equal(v == 2, truth['visible'][i, :17])
        assert np.all(truth['in_image'][i, :17][v > 0])
        x, y, w, h = ann['bbox']
        assert w > 0 and h > 0 and 0 < ann['area'] <= w * h
        vis = kp[v == 2, :2]
        assert np.all((vis >= [x - 1, y - 1]) & (vis <= [x + w + 1, y + h + 1])), 'visible joint outside its box'


@pytest.mark.parametrize('split', ['train', 'val'])
def test_mpii_json_one_based_and_matches_truth(twins, split):
    out, summary = twins
    rows = json.loads((out / f'mpii/annotations/mpii_{split}.json').read_text())
    truth = load_truth(out / f'mpii/annotations/truth_{split}.npz')
    assert len(rows) == len(truth['instance_key']) == summary['mpii'][split]['instances'] > 0
    np.testing.assert_array_equal(truth['instance_key'], np.arange(len(rows)))
    idx = union_indices(MPII16, TWIN_FIGURE)
    for i, r in enumerate(rows):
        assert set(r) == {'image', 'center', 'scale', 'joints', 'joints_vis'}
        assert (out / 'mpii/images' / r['image']).is_file()
        assert truth['image_id'][i] == int(r['image'].split('.')[0])
        joints, vis = np.array(r['joints'], float), np.array(r['joints_vis'])
        assert joints.shape == (16, 2) and vis.shape == (16,)
        np.testing.assert_array_equal(vis > 0, truth['in_image'][i, idx])
        np.testing.assert_allclose(joints[vis > 0] - 1, truth['keypoints'][i, idx][vis > 0], atol=0.01)
        assert np.all(joints[vis == 0] == -1)
        # mmpose's transform (centre down by 15 * scale, 0-based) lands on the body box centre, and the
        # square box of side 200 * scale holds every labelled joint
        side = 200 * r['scale']
        center = np.array(r['center']) + [0, 15 * r['scale']] - 1
        box = truth['body_box'][i]
        np.testing.assert_allclose(center, (box[:2] + box[2:]) / 2, atol=0.02)
        assert np.all(np.abs(joints[vis > 0] - 1 - center) <= side / 2 + 0.01)


def test_mpii_gt_mat_like_the_real_one(twins):
    from scipy.io import loadmat
    out, _ = twins
    mat = loadmat(str(out / 'mpii/annotations/mpii_gt_val.mat'))
    rows = json.loads((out / 'mpii/annotations/mpii_val.json').read_text())
    truth = load_truth(out / 'mpii/annotations/truth_val.npz')
    n = len(rows)
    assert mat['headboxes_src'].shape == (2, 2, n)
    assert mat['jnt_missing'].shape == (16, n) and mat['pos_gt_src'].shape == (16, 2, n)
    assert mat['dataset_joints'].shape == (1, 16)
    boxes = np.transpose(mat['headboxes_src'], [2, 0, 1])  # as mmpose reads it
    np.testing.assert_allclose(0.6 * np.linalg.norm(boxes[:, 1] - boxes[:, 0], axis=1), truth['head_size'], rtol=1e-5)
    np.testing.assert_array_equal(mat['jnt_missing'].T, 1 - np.array([r['joints_vis'] for r in rows]))
    np.testing.assert_allclose(np.transpose(mat['pos_gt_src'], [2, 0, 1]), [r['joints'] for r in rows])
    # the head box surrounds the head joints
    head = truth['keypoints'][:, [UNION21_NAMES.index('head_top'), UNION21_NAMES.index('upper_neck')]] + 1
    assert np.all((head >= boxes[:, :1] - 0.01) & (head <= boxes[:, 1:] + 0.01))


def test_truth_geometry_is_consistent(twins):
    out, _ = twins
    t = load_truth(out / 'coco/annotations/truth_train.npz')
    kp = t['keypoints'].astype(np.float64)
    j = {n: kp[:, i] for i, n in enumerate(UNION21_NAMES)}
    np.testing.assert_allclose(j['pelvis'], (j['left_hip'] + j['right_hip']) / 2, atol=0.02)
    np.testing.assert_allclose(j['thorax'], (j['left_shoulder'] + j['right_shoulder']) / 2, atol=0.02)
    assert np.all(t['visible'] <= t['in_image'])
    assert np.all(t['head_size'] > 0)
    assert t['visible'].mean() > 0.4, 'most joints should be seen'


def test_face_points_follow_facing():
    body = sample_body(np.random.default_rng(0))
    pose = sample_pose(np.random.default_rng(0), COCO_STYLE)
    pose.update(roll=0.0, head_yaw=0.0, head_pitch=0.0, head_roll=0.0, torso_side=0.0, torso_twist=0.0)
    front = face_point_visible(layout_figure(dict(pose, yaw=0.0), body, 150, np.array([100., 100.])))
    back = face_point_visible(layout_figure(dict(pose, yaw=180.0), body, 150, np.array([100., 100.])))
    profile = face_point_visible(layout_figure(dict(pose, yaw=90.0), body, 150, np.array([100., 100.])))
    assert all(front.values())
    assert not back['nose'] and not back['left_eye'] and not back['right_eye'] and back['left_ear']
    assert profile['nose'] and profile['left_ear'] != profile['right_ear']
    # facing the camera, the person's left is on the image right; from behind, on the image left
    f = layout_figure(dict(pose, yaw=0.0), body, 150, np.array([100., 100.])).joints
    b = layout_figure(dict(pose, yaw=180.0), body, 150, np.array([100., 100.])).joints
    ls, rs = UNION21_NAMES.index('left_shoulder'), UNION21_NAMES.index('right_shoulder')
    assert f[ls, 0] > f[rs, 0] and b[ls, 0] < b[rs, 0]
    ht, un = UNION21_NAMES.index('head_top'), UNION21_NAMES.index('upper_neck')
    assert f[ht, 1] < f[un, 1] < f[UNION21_NAMES.index('pelvis'), 1]


def _table(keys):
    t = InstanceTable.empty(TWIN_FIGURE.num_joints)
    n = len(keys)
    cols = {k: np.repeat(v[:1], n, axis=0) if len(v) else np.zeros((n,) + v.shape[1:], v.dtype)
            for k, v in t.columns().items()}
    cols['instance_key'] = np.array(keys, np.int64)
    return InstanceTable(**cols)


def test_load_and_match_truth(twins, tmp_path):
    out, _ = twins
    truth = load_truth(out / 'coco/annotations/truth_val.npz')
    keys = truth['instance_key'][::-1].copy()
    kp, vis = match_truth(_table(keys), truth)
    np.testing.assert_array_equal(kp, truth['keypoints'][::-1])
    np.testing.assert_array_equal(vis, truth['visible'][::-1])
    _, inside = match_truth(_table(keys), truth, mask='in_image')
    np.testing.assert_array_equal(inside, truth['in_image'][::-1])
    with pytest.raises(KeyError, match='no synthetic truth'):
        match_truth(_table([int(keys.max()) + 1]), truth)
    with pytest.raises(FileNotFoundError, match='not found'):
        load_truth(tmp_path / 'missing.npz')
    np.savez(tmp_path / 'bad.npz', instance_key=np.zeros(1))
    with pytest.raises(ValueError, match='missing arrays'):
        load_truth(tmp_path / 'bad.npz')


def test_fifty_images_are_fast(tmp_path):
    t0 = time.perf_counter()
    make_synthetic(tmp_path, n_images=25, seed=0)  # 25 per twin = 50 images
    assert time.perf_counter() - t0 < 10.0  # ~2 s on a quiet 2-core machine; generous under load


def test_project_loaders_read_the_twins(twins):
    try:
        from data.coco import load_coco
        from data.mpii import load_mpii
    except ImportError as e:  # written by another helper; the format tests above stand alone
        pytest.skip(f'data/coco.py or data/mpii.py not available yet ({e})')
    out, _ = twins
    coco = load_coco(out / 'coco/annotations/person_keypoints_val.json', out / 'coco/images/val', split_mode='val',
                     union=TWIN_FIGURE)
    truth = load_truth(out / 'coco/annotations/truth_val.npz')
    kp, _ = match_truth(coco, truth)
    lab = coco.keypoints_visible > 0
    assert len(coco) > 0 and lab.any() and not lab[:, 17:].any()
    np.testing.assert_allclose(coco.keypoints[lab], kp[lab], atol=0.01)
    assert all(Path(p).is_file() for p in coco.image_path)

    mpii = load_mpii(out / 'mpii/annotations/mpii_val.json', out / 'mpii/images',
                     head_boxes_file=out / 'mpii/annotations/mpii_gt_val.mat', union=TWIN_FIGURE)
    truth = load_truth(out / 'mpii/annotations/truth_val.npz')
    kp, _ = match_truth(mpii, truth)
    lab = mpii.keypoints_visible > 0
    assert len(mpii) == len(truth['instance_key']) and not lab[:, :5].any()
    np.testing.assert_allclose(mpii.keypoints[lab], kp[lab], atol=0.01)
    np.testing.assert_allclose(mpii.head_size, truth['head_size'], rtol=1e-5)
    np.testing.assert_array_equal(mpii.image_id, truth['image_id'])
    # the loader's box (after mmpose's 1.25 padding) covers every labelled joint
    b = mpii.bbox
    c, half = (b[:, :2] + b[:, 2:]) / 2, 1.25 * (b[:, 2:] - b[:, :2]) / 2
    assert np.all(~lab | (np.abs(mpii.keypoints - c[:, None]) <= half[:, None]).all(-1))


def test_truth_records_each_figures_activity_from_its_twins_mix(twins):
    out, _ = twins
    for style in (COCO_STYLE, MPII_STYLE):
        t = load_truth(out / f'{style.name}/annotations/truth_train.npz')
        assert t['activity'].shape == t['instance_key'].shape
        assert set(t['activity'].tolist()) <= set(style.activities), style.name


def test_aic_twin_is_ai_challenger_in_coco_format(tmp_path):
    """The AIC-style twin: AI Challenger's 14 joints, its names and order, in the COCO keypoints format;
    its `neck` is the figure's upper_neck (data.skeletons.ALIASES), read back by the COCO-format loader."""
    from data.coco import load_coco
    from data.truth import truth_in_union
    summary = make_synthetic(tmp_path, n_images=8, seed=SEED, styles=('aic',), image_size=(240, 200))
    assert set(summary) >= {'aic'} and 'coco' not in summary and summary['aic']['train']['instances'] > 0
    ann = json.loads((tmp_path / 'aic/annotations/person_keypoints_train.json').read_text())
    assert ann['categories'][0]['keypoints'] == [
        'right_shoulder', 'right_elbow', 'right_wrist', 'left_shoulder', 'left_elbow', 'left_wrist', 'right_hip',
        'right_knee', 'right_ankle', 'left_hip', 'left_knee', 'left_ankle', 'head_top', 'neck']
    assert all(len(a['keypoints']) == 14 * 3 for a in ann['annotations'])
    table = load_coco(tmp_path / 'aic/annotations/person_keypoints_train.json', tmp_path / 'aic/images/train',
                      skeleton=AIC14, union=TWIN_FIGURE)
    truth = load_truth(tmp_path / 'aic/annotations/truth_train.npz')
    kp, _ = truth_in_union(truth, TWIN_FIGURE, truth_rows(table, truth))
    lab = table.keypoints_visible > 0
    assert lab[:, TWIN_FIGURE.index('upper_neck')].any() and not lab[:, :5].any()  # no face points in AIC
    np.testing.assert_allclose(table.keypoints[lab], kp[lab], atol=0.01)
    # the loader reads the file's own neck into the union's upper_neck
    first = np.array(ann['annotations'][0]['keypoints'], np.float32).reshape(14, 3)
    row = np.flatnonzero(table.instance_key == ann['annotations'][0]['id'])[0]
    if first[13, 2] > 0:
        np.testing.assert_allclose(table.keypoints[row, TWIN_FIGURE.index('upper_neck')], first[13, :2])
