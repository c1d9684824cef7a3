"""Bad annotation records and image files: skipped and counted by reason (or an error naming file,
record and reason in strict mode); images checked before a long job starts."""
import json

import numpy as np
import pytest

from data.coco import load_coco
from data.datasets import load_split
from data.images import ImageError, check_image_files
from data.mpii import load_mpii
from data.validation import BadRecordError, RecordCheck, image_inside_root


def _mpii_entry(image='000000001.jpg', center=(101., 201.), scale=1.0):
    joints = np.full((16, 2), 120.0)
    return {'image': image, 'center': list(center), 'scale': scale, 'joints': joints.tolist(),
            'joints_vis': [1] * 16}


def _coco(tmp_path, annotations, images=None):
    data = {'images': images or [{'id': 1, 'file_name': 'a.jpg', 'width': 100, 'height': 80}],
            'annotations': annotations, 'categories': [{'id': 1, 'name': 'person'}]}
    p = tmp_path / 'person_keypoints.json'
    p.write_text(json.dumps(data))
    return p


def _ann(i, bbox=(10, 10, 30, 40), kp=(20.0, 20.0, 2), image_id=1):
    kps = [0] * 51
    kps[0:3] = list(kp)
    return {'id': i, 'image_id': image_id, 'bbox': list(bbox), 'num_keypoints': 1, 'iscrowd': 0,
            'category_id': 1, 'keypoints': kps}


def test_mpii_bad_entries_are_skipped_and_counted_with_keys_and_head_boxes_aligned(tmp_path):
    entries = [_mpii_entry(), _mpii_entry(scale=0.0), _mpii_entry(scale=-1.0), _mpii_entry(center=(float('nan'), 3.)),
               _mpii_entry(image='../../elsewhere/x.jpg'), _mpii_entry(center=(50., 60.))]
    p = tmp_path / 'mpii_val.json'
    p.write_text(json.dumps(entries))
    heads = tmp_path / 'heads.npy'
    np.save(heads, np.arange(6 * 4, dtype=np.float64).reshape(6, 4) * np.array([1, 1, 2, 2]))
    check = RecordCheck(p)
    t = load_mpii(p, tmp_path / 'images', head_boxes_file=heads, check=check)
    assert t.instance_key.tolist() == [0, 5]  # the entries' own indices: truth and caches stay keyed
    assert check.skipped == {'scale <= 0 or not finite': 2, 'non-finite centre': 1,
                             'image path outside the image root': 1}
    assert check.summary() == ('mpii_val.json: 2 instances, 4 skipped (image path outside the image root: 1, '
                               'non-finite centre: 1, scale <= 0 or not finite: 2)')
    boxes = np.load(heads).reshape(6, 2, 2)
    np.testing.assert_allclose(t.head_size, 0.6 * np.linalg.norm(boxes[[0, 5], 1] - boxes[[0, 5], 0], axis=1))
    with pytest.raises(BadRecordError, match=r'mpii_val\.json: entry \[1\] \(000000001\.jpg\): scale <= 0'):
        load_mpii(p, tmp_path / 'images', check=RecordCheck(p, strict=True))


def test_coco_bad_records_are_counted_by_reason(tmp_path):
    anns = [_ann(1), _ann(2, bbox=(10, 10, 0, 40)), _ann(3, bbox=(10, 10, -5, 40)), _ann(4, bbox=(500, 500, 20, 20)),
            _ann(5, kp=(float('nan'), 3.0, 2)), _ann(6, kp=(300.0, 20.0, 2)), _ann(7, image_id=99),
            _ann(8, bbox=(float('nan'), 0, 5, 5))]
    p = _coco(tmp_path, anns)
    check = RecordCheck(p)
    t = load_coco(p, tmp_path / 'images', check=check)
    assert t.instance_key.tolist() == [1]
    assert check.skipped == {'zero-area or negative box': 2, 'box outside the image': 1, 'non-finite keypoint': 1,
                             'labelled keypoint outside the image': 1, 'unknown image_id': 1, 'non-finite box': 1}
    with pytest.raises(BadRecordError, match=r'person_keypoints\.json: annotations\[6\] \(id 7\): unknown image_id'):
        load_coco(p, tmp_path / 'images', check=RecordCheck(p, strict=True))


def test_keypoints_all_nan_are_skipped_and_counted_or_strict(tmp_path):
    nan = float('nan')
    no_count = _ann(2, kp=(nan, nan, nan))  # without num_keypoints, NaN coordinates would count as labelled
    no_count.pop('num_keypoints')
    no_count['keypoints'] = [nan] * 51
    p = _coco(tmp_path, [_ann(1), no_count, dict(_ann(3), keypoints=[nan] * 51)])
    check = RecordCheck(p)
    assert load_coco(p, tmp_path / 'images', check=check).instance_key.tolist() == [1]
    assert check.skipped == {'keypoints all NaN': 2}
    with pytest.raises(BadRecordError, match=r'annotations\[1\] \(id 2\): keypoints all NaN'):
        load_coco(p, tmp_path / 'images', check=RecordCheck(p, strict=True))
    entry = dict(_mpii_entry(), joints=np.full((16, 2), nan).tolist(), joints_vis=[nan] * 16)
    m = tmp_path / 'mpii_train.json'
    m.write_text(json.dumps([_mpii_entry(), entry]))
    check = RecordCheck(m)
    assert load_mpii(m, tmp_path / 'images', check=check).instance_key.tolist() == [0]
    assert check.summary() == 'mpii_train.json: 1 instances, 1 skipped (keypoints all NaN: 1)'


def test_what_mmpose_filters_is_counted_apart_and_never_strict(tmp_path):
    crowd, empty, zeros = dict(_ann(2), iscrowd=1), dict(_ann(3), num_keypoints=0), _ann(4, kp=(0, 0, 2))
    p = _coco(tmp_path, [_ann(1), crowd, empty, zeros, _ann(5, bbox=(1, 1, 0, 0)), {'id': 6, 'image_id': 1}])
    check = RecordCheck(p, strict=False)
    load_coco(p, tmp_path / 'images', check=check)
    assert check.filtered == {'crowd': 1, 'num_keypoints 0': 1, 'no keypoint coordinate > 0': 1,
                              'no bbox or keypoints': 1}
    assert check.summary() == (f'{p.name}: 1 instances, 1 skipped (zero-area or negative box: 1), 4 filtered as '
                               'mmpose does (crowd: 1, no bbox or keypoints: 1, no keypoint coordinate > 0: 1, '
                               'num_keypoints 0: 1)')
    assert check.as_dict()['filtered'] == dict(sorted(check.filtered.items()))
    strict = RecordCheck(_coco(tmp_path, [_ann(1), crowd, empty]), strict=True)
    assert len(load_coco(strict.path, tmp_path / 'images', check=strict)) == 1 and sum(strict.filtered.values()) == 2


def test_coco_image_outside_the_root_is_refused(tmp_path):
    p = _coco(tmp_path, [_ann(1), _ann(2, image_id=2)],
              images=[{'id': 1, 'file_name': 'a.jpg', 'width': 100, 'height': 80},
                      {'id': 2, 'file_name': '/etc/passwd.jpg', 'width': 100, 'height': 80}])
    check = RecordCheck(p)
    assert load_coco(p, tmp_path / 'images', check=check).instance_key.tolist() == [1]
    assert check.skipped == {'image path outside the image root': 1}


def test_image_inside_root(tmp_path):
    root = tmp_path / 'images'
    assert image_inside_root(root, 'a/b.jpg') == str((root / 'a' / 'b.jpg'))
    assert image_inside_root(root, '../x.jpg') is None
    assert image_inside_root(root, '/abs/x.jpg') is None
    assert image_inside_root(root, 'a/../../x.jpg') is None


def test_a_file_with_no_usable_instance_is_an_error(tmp_path):
    p = _coco(tmp_path, [])
    datasets = {'coco': {'type': 'coco', 'train': {'ann_file': str(p), 'image_root': str(tmp_path)}}}
    with pytest.raises(ValueError, match=r'person_keypoints\.json: no usable instance'):
        load_split(datasets, 'train')
    checks = []
    p2 = _coco(tmp_path, [_ann(1), _ann(2, bbox=(1, 1, 0, 0))])
    load_split(datasets, 'train', checks=checks)
    assert [c.summary() for c in checks] == [f'{p2.name}: 1 instances, 1 skipped (zero-area or negative box: 1)']


def test_image_files_are_checked_before_the_job(tmp_path):
    good = tmp_path / 'good.jpg'
    good.write_bytes(b'\xff\xd8\xff\xe0' + b'\0' * 20)
    (tmp_path / 'empty.jpg').write_bytes(b'')
    (tmp_path / 'text.jpg').write_text('hello, not an image')
    check_image_files([good, good])
    with pytest.raises(ImageError, match=r'missing\.jpg: file not found'):
        check_image_files([good, tmp_path / 'missing.jpg'])
    with pytest.raises(ImageError, match=r'empty\.jpg: empty file \(1 more bad image files\)'):
        check_image_files([tmp_path / 'empty.jpg', tmp_path / 'text.jpg', good])
