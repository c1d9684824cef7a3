import numpy as np
import pytest

from data.datasets import datasets_union
from data.skeletons import (AIC14, COCO17, MPII16, TWIN_FIGURE, derive_union, from_union, model_skeleton, to_union,
                            union_indices, union_mask)

COCO_NAMES = list(COCO17.joint_names)


def test_coco_mpii_union_is_coco_then_the_four_mpii_joints():
    u = derive_union(['coco', 'mpii'])
    assert list(u.joint_names) == COCO_NAMES + ['pelvis', 'thorax', 'upper_neck', 'head_top']
    # sigmas: COCO's official ones, then the MPII-only joints' analogies (hip, shoulder, shoulder, ankle)
    np.testing.assert_array_equal(u.sigmas, np.r_[COCO17.sigmas, np.float32([.107, .079, .079, .089])])
    assert u.flip_pairs == COCO17.flip_pairs and u.links[:len(COCO17.links)] == COCO17.links
    names = [(u.joint_names[a], u.joint_names[b]) for a, b in u.links[len(COCO17.links):]]
    assert names == [('left_hip', 'pelvis'), ('right_hip', 'pelvis'), ('pelvis', 'thorax'), ('thorax', 'upper_neck'),
                     ('upper_neck', 'head_top'), ('left_shoulder', 'thorax'), ('right_shoulder', 'thorax')]
    assert u.sources[0] == ('coco',) and u.sources[5] == ('coco', 'mpii') and u.sources[-1] == ('mpii',)
    assert u.name == 'union_coco_mpii'


def test_a_dataset_alone_is_its_own_union_and_order_follows_the_config():
    assert derive_union(['mpii']).joint_names == MPII16.joint_names
    u = derive_union(['mpii', 'coco'])
    assert u.joint_names[:16] == MPII16.joint_names and u.joint_names[16:] == COCO17.joint_names[:5]


def test_coco_aic_union_has_19_joints_and_aic_sigmas_for_its_own():
    u = derive_union(['coco', 'aic'])
    assert list(u.joint_names) == COCO_NAMES + ['head_top', 'upper_neck']  # AIC's neck under the union's name
    np.testing.assert_array_equal(u.sigmas[17:], AIC14.sigmas[[12, 13]])
    assert [(u.joint_names[a], u.joint_names[b]) for a, b in u.links[len(COCO17.links):]] == [
        ('right_shoulder', 'upper_neck'), ('upper_neck', 'left_shoulder'), ('head_top', 'upper_neck')]
    np.testing.assert_array_equal(union_mask(AIC14, u), [n not in COCO_NAMES[:5] for n in u.joint_names])


def test_aic_neck_is_mpii_upper_neck_so_three_datasets_stay_21():
    u = derive_union(['coco', 'mpii', 'aic'])
    assert u.joint_names == derive_union(['coco', 'mpii']).joint_names
    assert u.sources[u.index('upper_neck')] == ('mpii', 'aic') and u.sources[u.index('head_top')] == ('mpii', 'aic')
    idx = union_indices(AIC14, u)
    assert u.joint_names[idx[AIC14.index('neck')]] == 'upper_neck'
    assert [u.joint_names[i] for i in idx[:12]] == list(AIC14.joint_names[:12])
    assert TWIN_FIGURE.joint_names == u.joint_names  # the twins' figure has every joint a type names


def test_crowdpose_names_the_same_head_and_neck_points():
    from data.skeletons import CROWDPOSE14
    u = derive_union(['coco', 'crowdpose', 'aic'])
    assert list(u.joint_names) == COCO_NAMES + ['head_top', 'upper_neck']
    assert u.sources[u.index('head_top')] == ('crowdpose', 'aic')
    assert CROWDPOSE14.flip_indices.tolist() == [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13]  # mmpose's
    assert len(CROWDPOSE14.links) == 15


def test_aic_skeleton_is_mmposes():
    assert AIC14.joint_names == ('right_shoulder', 'right_elbow', 'right_wrist', 'left_shoulder', 'left_elbow',
                                 'left_wrist', 'right_hip', 'right_knee', 'right_ankle', 'left_hip', 'left_knee',
                                 'left_ankle', 'head_top', 'neck')
    # mmpose's aic.py flip_indices
    assert AIC14.flip_indices.tolist() == [3, 4, 5, 0, 1, 2, 9, 10, 11, 6, 7, 8, 12, 13]
    assert len(AIC14.links) == 14 and AIC14.sigmas[0] == np.float32(0.01388152)


def test_scatter_gather_round_trip_and_errors():
    u = derive_union(['coco', 'aic'])
    v = np.arange(2 * 14 * 2, dtype=np.float32).reshape(2, 14, 2) + 1
    out = to_union(v, AIC14, u)
    assert out.shape == (2, 19, 2) and (out[:, :5] == 0).all()
    np.testing.assert_array_equal(from_union(out, AIC14, u), v)
    with pytest.raises(KeyError, match="'mpii16'.*pelvis"):
        union_indices(MPII16, u)
    with pytest.raises(KeyError, match="unknown dataset type 'halpe'"):
        derive_union(['coco', 'halpe'])
    assert model_skeleton('union', u) is u and model_skeleton('aic14', u) is AIC14


def test_datasets_union_follows_the_config_and_names_an_unknown_type():
    cfg = dict(coco=dict(type='coco'), mpii=dict(type='mpii'), aic=dict(type='aic'))
    assert datasets_union(cfg).num_joints == 21
    assert datasets_union(dict(a=dict(type='aic'), c=dict(type='coco'))).joint_names[:14] == (
        AIC14.joint_names[:13] + ('upper_neck',))
    with pytest.raises(ValueError, match="unknown dataset type 'halpe'"):
        datasets_union(dict(h=dict(type='halpe')))
