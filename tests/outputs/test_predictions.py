import numpy as np
import pytest

from tests.conftest import COCO_MPII as UNION21
from outputs.predictions import UNITS, read_predictions_h5, write_predictions_h5


def _table(n, rng):
    return dict(dataset=np.array(['coco', 'mpii', 'coco_twin'])[rng.integers(0, 3, n)],
                image_id=rng.integers(0, 10 ** 12, n), instance_key=rng.integers(0, 10 ** 9, n),
                bbox=rng.uniform(0, 640, (n, 4)).astype(np.float32),
                keypoints=rng.uniform(0, 640, (n, 21, 2)).astype(np.float32),
                scores=rng.uniform(0, 1, (n, 21)).astype(np.float32))


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    cols = _table(7, rng)
    path = write_predictions_h5(tmp_path / 'sub' / 'predictions.h5', **cols, joint_names=UNION21.joint_names,
                                skeleton_links=UNION21.links, skeleton_name=UNION21.name, attrs={'run': 'demo'})
    assert sorted(p.name for p in path.parent.iterdir()) == ['predictions.h5']  # no temp file left
    back = read_predictions_h5(path)
    for name, col in cols.items():
        np.testing.assert_array_equal(back[name], col)
        assert back[name].dtype.kind == col.dtype.kind
    attrs = back['attrs']
    assert attrs['joint_names'] == UNION21.joint_names
    assert attrs['units'] == UNITS
    assert attrs['skeleton'] == 'union_coco_mpii'
    np.testing.assert_array_equal(attrs['skeleton_links'], np.array(UNION21.links))
    assert attrs['run'] == 'demo'


def test_empty_table_round_trips(tmp_path):
    cols = _table(0, np.random.default_rng(1))
    back = read_predictions_h5(write_predictions_h5(tmp_path / 'empty.h5', **cols, joint_names=UNION21.joint_names))
    assert back['keypoints'].shape == (0, 21, 2) and len(back['dataset']) == 0


def test_shape_mismatch_names_the_column(tmp_path):
    cols = _table(3, np.random.default_rng(2))
    cols['scores'] = cols['scores'][:, :17]
    with pytest.raises(ValueError, match="'scores'"):
        write_predictions_h5(tmp_path / 'bad.h5', **cols, joint_names=UNION21.joint_names)
    assert not list(tmp_path.iterdir())
