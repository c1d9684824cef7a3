import json

import numpy as np
import pytest

from data.geometry import bbox_xyxy2cs
from data.mpii import MpiiFormatError, head_sizes, load_head_boxes, load_mpii
from data.skeletons import MPII16, from_union, union_mask
from tests.conftest import COCO_MPII
from tests.conftest import REAL_SAMPLES

REAL = REAL_SAMPLES / 'mpii'
REAL_ANN = REAL / 'annotations' / 'mpii_sample.json'


def _entry(image='000000001.jpg', center=(101., 201.), scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    joints = rng.uniform(50, 250, (16, 2)).round(1)
    vis = np.ones(16, int)
    vis[3] = 0
    joints[3] = -1
    return {'image': image, 'center': list(center), 'scale': scale, 'joints': joints.tolist(),
            'joints_vis': vis.tolist()}


def _write(tmp_path, entries, name='mpii_val.json'):
    p = tmp_path / name
    p.write_text(json.dumps(entries))
    return p


def test_generated_file_centre_scale_like_mmpose(tmp_path):
    e = [_entry(), _entry('000000002.jpg', (-1., 51.), 0.5, seed=1), _entry('000000001.jpg', seed=2)]
    t = load_mpii(_write(tmp_path, e), '/mpii/images')
    assert set(t.dataset) == {'mpii'} and len(t) == 3
    np.testing.assert_array_equal(t.instance_key, [0, 1, 2])
    np.testing.assert_array_equal(t.image_id, [1, 2, 1])
    assert t.image_path[1] == '/mpii/images/000000002.jpg'
    # by hand: centre (101, 201), scale 1 -> side 200, centre y + 15, then 1-based -> 0-based
    center, scale = bbox_xyxy2cs(t.bbox[0], padding=1.25)
    np.testing.assert_allclose(center, [100, 215], atol=1e-4)
    np.testing.assert_allclose(scale, [250, 250], atol=1e-4)
    np.testing.assert_allclose(t.bbox[0], [0, 115, 200, 315], atol=1e-4)
    # centre x == -1: no downward move
    np.testing.assert_allclose(bbox_xyxy2cs(t.bbox[1], padding=1.0)[0], [-2, 50], atol=1e-4)
    np.testing.assert_allclose(t.area[0], 200 * 200 * 0.53)


def test_generated_file_joints(tmp_path):
    e = _entry()
    t = load_mpii(_write(tmp_path, [e]), '/x', union=COCO_MPII)
    kp = from_union(t.keypoints, MPII16, COCO_MPII)[0]
    vis = from_union(t.keypoints_visible, MPII16, COCO_MPII)[0]
    raw = np.array(e['joints'], np.float32)
    keep = np.arange(16) != 3
    np.testing.assert_allclose(kp[keep], raw[keep] - 1)  # MATLAB 1-based -> 0-based
    assert vis[3] == 0 and (kp[3] == 0).all() and vis[keep].all()
    np.testing.assert_array_equal(t.annotated[0], union_mask(MPII16, COCO_MPII))
    assert t.keypoints_visible[0, ~union_mask(MPII16, COCO_MPII)].sum() == 0
    assert np.isnan(t.head_size).all()


@pytest.mark.parametrize('fmt', ['npy', 'json', 'mat'])
def test_head_boxes_give_pckh_normaliser(tmp_path, fmt):
    e = [_entry(), _entry(seed=1)]
    boxes = np.array([[[10., 20.], [40., 60.]], [[0., 0.], [6., 8.]]])
    if fmt == 'npy':
        hb = tmp_path / 'heads.npy'
        np.save(hb, boxes)
    elif fmt == 'json':
        hb = tmp_path / 'heads.json'
        hb.write_text(json.dumps(boxes.reshape(2, 4).tolist()))
    else:
        from scipy.io import savemat
        hb = tmp_path / 'mpii_gt_val.mat'
        savemat(hb, {'headboxes_src': np.transpose(boxes, [1, 2, 0])})  # stored as 2 x 2 x N
    t = load_mpii(_write(tmp_path, e), '/x', head_boxes_file=hb)
    np.testing.assert_allclose(t.head_size, [0.6 * 50, 0.6 * 10], rtol=1e-6)
    np.testing.assert_allclose(head_sizes(load_head_boxes(hb)), t.head_size)


def test_errors_name_the_file(tmp_path):
    good = _write(tmp_path, [_entry()])
    hb = tmp_path / 'heads.npy'
    np.save(hb, np.zeros((3, 2, 2)))
    with pytest.raises(MpiiFormatError, match='3 head boxes') as info:
        load_mpii(good, '/x', head_boxes_file=hb)
    assert str(hb) in str(info.value)
    bad = _write(tmp_path, [{'image': 'a.jpg', 'center': [1, 2], 'scale': 1.0, 'joints': [[1, 2]] * 15,
                             'joints_vis': [1] * 16}], 'bad.json')
    with pytest.raises(MpiiFormatError, match=r'entry \[0\]') as info:
        load_mpii(bad, '/x')
    assert str(bad) in str(info.value)
    notjson = tmp_path / 'x.json'
    notjson.write_text('{')
    with pytest.raises(MpiiFormatError, match='not valid JSON'):
        load_mpii(notjson, '/x')
    with pytest.raises(FileNotFoundError, match='missing.json'):
        load_mpii(tmp_path / 'missing.json', '/x')


def test_real_sample_reproduces_mmpose_centre_and_scale():
    if not REAL_ANN.is_file():
        pytest.skip(f'real MPII samples missing under {REAL}')
    raw = json.loads(REAL_ANN.read_text())
    t = load_mpii(REAL_ANN, REAL / 'images', union=COCO_MPII)
    assert len(t) == len(raw)
    for i, a in enumerate(raw):
        # mmpose MpiiDataset + GetBBoxCenterScale(padding=1.25), written out by hand
        s = np.float32(a['scale']) * np.float32(200)
        c = np.array(a['center'], np.float32)
        c[1] += np.float32(15 / 200) * s
        c -= 1
        center, scale = bbox_xyxy2cs(t.bbox[i], padding=1.25)
        np.testing.assert_allclose(center, c, atol=1e-3)
        np.testing.assert_allclose(scale, [s * 1.25, s * 1.25], rtol=1e-6)
        vis = np.array(a['joints_vis']) > 0
        np.testing.assert_allclose(from_union(t.keypoints, MPII16, COCO_MPII)[i][vis], np.array(a['joints'])[vis] - 1, atol=1e-4)
        assert (REAL / 'images' / a['image']).is_file() and t.image_path[i].endswith(a['image'])
