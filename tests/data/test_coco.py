import json

import numpy as np
import pytest

from data.coco import CocoFormatError, load_coco
from data.skeletons import COCO17, from_union, union_mask
from tests.conftest import COCO_MPII
from tests.conftest import REAL_SAMPLES

REAL = REAL_SAMPLES / 'coco'
REAL_ANN = REAL / 'annotations' / 'person_keypoints_sample.json'
REAL_DET = REAL / 'annotations' / 'person_detection_results_sample.json'


def _kps(points):
    """17 (x, y, v) from a dict joint index -> (x, y, v)."""
    out = [0] * 51
    for j, (x, y, v) in points.items():
        out[3 * j:3 * j + 3] = [x, y, v]
    return out


def _minimal(tmp_path):
    data = {
        'images': [{'id': 7, 'file_name': 'b.jpg', 'width': 100, 'height': 80},
                   {'id': 3, 'file_name': 'a.jpg', 'width': 50, 'height': 50}],
        'annotations': [
            # kept: box overflows the image and is clipped to [0, w-1] x [0, h-1]
            {'id': 11, 'image_id': 7, 'bbox': [-5, 10, 200, 30], 'num_keypoints': 2, 'iscrowd': 0, 'area': 123.,
             'category_id': 1, 'keypoints': _kps({0: (20, 20, 2), 5: (30, 25, 1), 9: (0, 0, 0)})},
            # dropped: crowd
            {'id': 12, 'image_id': 7, 'bbox': [0, 0, 10, 10], 'num_keypoints': 1, 'iscrowd': 1,
             'category_id': 1, 'keypoints': _kps({0: (5, 5, 2)})},
            # dropped: no keypoints
            {'id': 13, 'image_id': 7, 'bbox': [0, 0, 10, 10], 'num_keypoints': 0, 'iscrowd': 0,
             'category_id': 1, 'keypoints': _kps({})},
            # dropped: box entirely right of the image -> zero width after clipping
            {'id': 14, 'image_id': 7, 'bbox': [150, 10, 20, 20], 'num_keypoints': 1, 'iscrowd': 0,
             'category_id': 1, 'keypoints': _kps({0: (5, 5, 2)})},
            # kept; its image is listed second, so it comes after id 11
            {'id': 15, 'image_id': 3, 'bbox': [1, 2, 10, 20], 'num_keypoints': 1, 'iscrowd': 0, 'area': 50.,
             'category_id': 1, 'keypoints': _kps({16: (5, 9, 2)})},
        ],
        'categories': [{'id': 1, 'name': 'person'}],
    }
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps(data))
    return ann


def test_minimal_file_filters_and_maps_like_mmpose(tmp_path):
    t = load_coco(_minimal(tmp_path), '/imgs', union=COCO_MPII)
    np.testing.assert_array_equal(t.instance_key, [11, 15])
    np.testing.assert_array_equal(t.image_id, [7, 3])
    assert list(t.image_path) == ['/imgs/b.jpg', '/imgs/a.jpg'] and set(t.dataset) == {'coco'}
    np.testing.assert_array_equal(t.bbox, [[0, 10, 99, 40], [1, 2, 11, 22]])
    kp = from_union(t.keypoints, COCO17, COCO_MPII)
    np.testing.assert_array_equal(kp[0, [0, 5]], [[20, 20], [30, 25]])
    np.testing.assert_array_equal(from_union(t.keypoints_visible, COCO17, COCO_MPII)[0, [0, 5, 9]], [1, 1, 0])
    assert t.keypoints_visible[:, 17:].sum() == 0 and (t.keypoints[:, 17:] == 0).all()
    np.testing.assert_array_equal(t.annotated, np.tile(union_mask(COCO17, COCO_MPII), (2, 1)))
    np.testing.assert_array_equal(t.area, [123, 50])
    np.testing.assert_array_equal(t.bbox_score, [1, 1])
    assert np.isnan(t.head_size).all()
    # val without detections is the same ground truth (mmpose filters test-mode GT the same way)
    np.testing.assert_array_equal(load_coco(_minimal(tmp_path), '/imgs', 'val').bbox, t.bbox)


def test_minimal_detections(tmp_path):
    ann = _minimal(tmp_path)
    det = tmp_path / 'det.json'
    det.write_text(json.dumps([
        {'image_id': 7, 'category_id': 1, 'bbox': [1, 2, 3, 4], 'score': 0.9},
        {'image_id': 7, 'category_id': 2, 'bbox': [1, 2, 3, 4], 'score': 0.99},
        {'image_id': 3, 'category_id': 1, 'bbox': [5, 5, 10, 10], 'score': 0.2},
        {'image_id': 3, 'category_id': 1, 'bbox': [6, 6, 10, 10], 'score': 0.6},
    ]))
    t = load_coco(ann, '/imgs', 'val', det_file=det, det_score_thr=0.5)
    np.testing.assert_array_equal(t.instance_key, [0, 2])  # person-detection index, before the threshold
    np.testing.assert_array_equal(t.bbox, [[1, 2, 4, 6], [6, 6, 16, 16]])
    np.testing.assert_allclose(t.bbox_score, [0.9, 0.6])
    assert (t.keypoints == 0).all() and (t.keypoints_visible == 0).all()
    assert list(t.image_path) == ['/imgs/b.jpg', '/imgs/a.jpg']
    assert len(load_coco(ann, '/imgs', 'val', det_file=det)) == 3
    with pytest.raises(ValueError, match='val'):
        load_coco(ann, '/imgs', 'train', det_file=det)


@pytest.mark.parametrize('content,match', [
    ('{not json', 'not valid JSON'),
    ('[]', 'images'),
    ('{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": []}', r'images\[0\]'),
    ('{"images": [{"id": 1, "file_name": "a.jpg", "width": 9, "height": 9}], "annotations": '
     '[{"id": 1, "image_id": 1, "bbox": [0, 0, 5, 5], "keypoints": [1, 2, 3]}]}', r'annotations\[0\]'),
])
def test_malformed_files_name_the_file(tmp_path, content, match):
    ann = tmp_path / 'broken.json'
    ann.write_text(content)
    with pytest.raises(CocoFormatError, match=match) as info:
        load_coco(ann, '/imgs')
    assert str(ann) in str(info.value)


def test_an_annotation_of_an_unknown_image_is_skipped_and_counted_or_strict(tmp_path):
    from data.validation import BadRecordError, RecordCheck
    ann = tmp_path / 'broken.json'
    ann.write_text('{"images": [], "annotations": [{"id": 1, "image_id": 4}]}')
    check = RecordCheck(ann)
    assert len(load_coco(ann, '/imgs', check=check)) == 0 and check.skipped == {'unknown image_id': 1}
    with pytest.raises(BadRecordError, match=r'broken\.json: annotations\[0\] \(id 1\): unknown image_id'):
        load_coco(ann, '/imgs', check=RecordCheck(ann, strict=True))


def test_missing_file_and_bad_detection_reference(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.json'):
        load_coco(tmp_path / 'nope.json', '/imgs')
    det = tmp_path / 'det.json'
    det.write_text(json.dumps([{'image_id': 999, 'category_id': 1, 'bbox': [1, 2, 3, 4], 'score': 0.9}]))
    with pytest.raises(CocoFormatError, match='999'):
        load_coco(_minimal(tmp_path), '/imgs', 'val', det_file=det)


def _real_or_skip():
    if not REAL_ANN.is_file():
        pytest.skip(f'real COCO samples missing under {REAL}')


def test_real_sample_ground_truth():
    _real_or_skip()
    raw = json.loads(REAL_ANN.read_text())
    t = load_coco(REAL_ANN, REAL / 'images', union=COCO_MPII)
    valid = [a for a in raw['annotations'] if not a['iscrowd'] and a['num_keypoints'] > 0]
    assert len(t) == len(valid) and len(t) < len(raw['annotations'])
    assert set(t.instance_key) == {a['id'] for a in valid}
    for a in valid:
        i = int(np.nonzero(t.instance_key == a['id'])[0][0])
        k = np.array(a['keypoints'], np.float32).reshape(17, 3)
        np.testing.assert_array_equal(from_union(t.keypoints, COCO17, COCO_MPII)[i], k[:, :2])
        np.testing.assert_array_equal(from_union(t.keypoints_visible, COCO17, COCO_MPII)[i], k[:, 2] > 0)
        x, y, w, h = a['bbox']
        np.testing.assert_allclose(t.bbox[i], [x, y, x + w, y + h], atol=1.0)  # clipping moves at most 1 px here
        assert t.image_id[i] == a['image_id']
    assert all((REAL / 'images').joinpath(p.split('/')[-1]).is_file() for p in t.image_path)


def test_real_sample_annotations_without_keypoints_are_counted():
    _real_or_skip()
    from data.validation import RecordCheck
    raw = json.loads(REAL_ANN.read_text())
    empty = sum(a['num_keypoints'] == 0 and not a['iscrowd'] for a in raw['annotations'])
    assert empty > 0  # the sample has such annotations
    check = RecordCheck(REAL_ANN, strict=True)  # mmpose's filter: counted, not an error
    t = load_coco(REAL_ANN, REAL / 'images', check=check)
    assert check.filtered == {'num_keypoints 0': empty} and not check.skipped
    assert check.summary() == (f'{REAL_ANN.name}: {len(t)} instances, {empty} filtered as mmpose does '
                               f'(num_keypoints 0: {empty})')


def test_real_sample_detections():
    _real_or_skip()
    dets = json.loads(REAL_DET.read_text())
    t = load_coco(REAL_ANN, REAL / 'images', 'val', det_file=REAL_DET, det_score_thr=0.5)
    people = [d for d in dets if d['category_id'] == 1]
    assert len(t) == sum(d['score'] >= 0.5 for d in people) > 0
    assert (t.bbox_score >= 0.5).all() and (t.keypoints_visible == 0).all()
