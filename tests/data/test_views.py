import cv2
import numpy as np
import pytest

from data.geometry import (bbox_xyxy2cs, compose_affine, fix_aspect_ratio, flip_matrix, get_warp_matrix,
                           teacher_to_student_bins, transform_points)
from tests.conftest import COCO_MPII
from data.views import (F, NUM_VIEW_FIELDS, POLICIES, VIEW_FIELDS, _philox_raw,
                        draw_views, identity_view, replay_view, stage_first_view, view_box, view_box_scales,
                        view_geometry, view_keypoints, view_matrices)

STUDENT = (192, 256)
TEACHER = (256, 256)


def _people(n, seed=0):
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(0, 300, n)
    y1 = rng.uniform(0, 200, n)
    bbox = np.stack([x1, y1, x1 + rng.uniform(40, 200, n), y1 + rng.uniform(80, 260, n)], 1).astype(np.float32)
    kp = (bbox[:, None, :2] + rng.uniform(0, 1, (n, 21, 2)) * (bbox[:, None, 2:] - bbox[:, None, :2]))
    vis = (rng.uniform(size=(n, 21)) < 0.85).astype(np.float32)
    keys = rng.integers(0, 2 ** 40, n)
    return keys, kp.astype(np.float32), vis, bbox


def _image(h=480, w=640, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)  # smooth texture, no aliasing


def _view(**fields):
    v = identity_view()
    for k, val in fields.items():
        v[F[k]] = val
    return v


def test_philox_matches_numpy_bit_generator():
    counters = np.array([[0, 1, 5, 0], [0, 7, 2 ** 63 + 3, 2], [0, 3, 0, 2 ** 40]], dtype=np.uint64)
    for seed in (0, 12345, 2 ** 64 - 1):
        raw = _philox_raw(seed, counters, 10)
        for row, ctr in zip(raw, counters):
            np.testing.assert_array_equal(row, np.random.Philox(key=seed, counter=ctr).random_raw(10))


def test_draw_views_row_alone_equals_row_in_batch():
    keys, kp, vis, bbox = _people(50)
    batch = draw_views(3, 1, keys, 6, kp, vis, bbox, 'main', skeleton=COCO_MPII)
    assert batch.shape == (6, 50, NUM_VIEW_FIELDS) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, draw_views(3, 1, keys, 6, kp, vis, bbox, 'main', skeleton=COCO_MPII))
    for i in (0, 17, 49):
        alone = draw_views(3, 1, keys[i:i + 1], 6, kp[i:i + 1], vis[i:i + 1], bbox[i:i + 1], 'main', skeleton=COCO_MPII)
        np.testing.assert_array_equal(alone[:, 0], batch[:, i])
    # more views do not change the first ones; seed and dataset change the numbers
    np.testing.assert_array_equal(draw_views(3, 1, keys, 9, kp, vis, bbox, 'main', skeleton=COCO_MPII)[:6], batch)
    assert not np.array_equal(draw_views(4, 1, keys, 6, kp, vis, bbox, 'main', skeleton=COCO_MPII), batch)
    assert not np.array_equal(draw_views(3, 0, keys, 6, kp, vis, bbox, 'main', skeleton=COCO_MPII), batch)


def test_no_view_is_the_unaugmented_crop_and_none_policy_is_identity():
    """Every view is drawn (view 0 was once the un-augmented crop: 1 step in V saw no augmentation);
    the 'none' policy (un-augmented pretraining) still gives the identity."""
    keys, kp, vis, bbox = _people(30)
    for policy in ('main', 'final'):
        views = draw_views(0, 0, keys, 4, kp, vis, bbox, policy, skeleton=COCO_MPII)
        assert not (views == identity_view()).all(-1).any(), policy
        assert (views[..., F['scale']] != 1).mean() > 0.9, policy
    none = draw_views(0, 0, keys, 4, kp, vis, bbox, 'none', skeleton=COCO_MPII)
    np.testing.assert_array_equal(none, np.tile(identity_view(), (4, 30, 1)))


def test_stages_draw_disjoint_views_and_a_stage_is_a_prefix_of_a_larger_draw():
    keys, kp, vis, bbox = _people(30)
    s1 = draw_views(0, 0, keys, 8, kp, vis, bbox, 'main', first_view=stage_first_view(0), skeleton=COCO_MPII)
    np.testing.assert_array_equal(draw_views(0, 0, keys, 3, kp, vis, bbox, 'main', first_view=stage_first_view(0), skeleton=COCO_MPII),
                                  s1[:3])
    s2 = draw_views(0, 0, keys, 2, kp, vis, bbox, 'main', first_view=stage_first_view(1), skeleton=COCO_MPII)
    assert not np.isclose(s2[:, None], s1[None]).all(-1).any()  # no stage-2 view repeats a stage-1 one


def test_main_policy_statistics_follow_rtmpose():
    keys, kp, vis, bbox = _people(4000, seed=2)
    v = draw_views(11, 0, keys, 2, kp, vis, bbox, 'main', skeleton=COCO_MPII)[1]
    assert abs(v[:, F['flip']].mean() - 0.5) < 0.03
    rot = v[:, F['rotation']]
    assert np.abs(rot).max() <= 80 and abs((rot != 0).mean() - 0.6) < 0.03
    scale = v[:, F['scale']]
    assert scale.min() >= 0.6 and scale.max() <= 1.4 and abs(scale.mean() - 1.0) < 0.02
    shifted = v[:, F['shift_x']] != 0
    assert abs(shifted.mean() - 0.3) < 0.03 and np.abs(v[:, F['shift_x']]).max() <= 0.16
    eligible = vis.sum(1) >= 9
    hb = v[:, F['half_body']] > 0
    assert not hb[~eligible].any() and abs(hb[eligible].mean() - 0.3) < 0.03
    final = draw_views(11, 0, keys, 2, kp, vis, bbox, 'final', skeleton=COCO_MPII)[1]
    assert (final[:, F['shift_x']] == 0).all() and np.abs(final[:, F['rotation']]).max() <= 60
    assert final[:, F['scale']].min() >= 0.75 and final[:, F['scale']].max() <= 1.25


def test_half_body_box_is_mmpose_box_of_the_chosen_half():
    # Only upper-body joints visible (lower below the minimum of 3): the half body must be the upper one.
    n = 400
    rng = np.random.default_rng(5)
    kp = rng.uniform(0, 300, (n, 21, 2)).astype(np.float32)
    vis = np.zeros((n, 21), np.float32)
    upper, lower = np.flatnonzero(COCO_MPII.upper_body), np.flatnonzero(~COCO_MPII.upper_body)
    assert [COCO_MPII.joint_names[j] for j in lower] == [
        'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle', 'pelvis']
    vis[:, upper] = 1
    vis[:, lower[:2]] = 1
    views = draw_views(9, 0, np.arange(n), 2, kp, vis, np.zeros((n, 4)), 'main', skeleton=COCO_MPII)[1]
    hb = views[:, F['half_body']] > 0
    assert 0.2 < hb.mean() < 0.4
    sel = kp[hb][:, upper]
    np.testing.assert_allclose(views[hb][:, [F['hb_cx'], F['hb_cy']]], sel.mean(1), rtol=1e-5)
    np.testing.assert_allclose(views[hb][:, [F['hb_w'], F['hb_h']]], (sel.max(1) - sel.min(1)) * 1.5, rtol=1e-5)
    assert (views[~hb][:, F['hb_cx']:] == 0).all()


def test_identity_view_crop_equals_plain_topdown_affine():
    img = _image()
    bbox = np.array([100.3, 50.7, 260.2, 400.9], np.float32)
    crop, M = replay_view(img, bbox, identity_view(), STUDENT)
    center, scale = bbox_xyxy2cs(bbox, padding=1.25)
    scale = fix_aspect_ratio(scale, STUDENT[0] / STUDENT[1])
    M_ref = get_warp_matrix(center, scale, 0., STUDENT)
    ref = cv2.warpAffine(img, M_ref, STUDENT, flags=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(M, M_ref)
    np.testing.assert_array_equal(crop, ref)
    assert crop.shape == (256, 192, 3) and crop.dtype == np.uint8


def test_replay_is_bit_identical_twice_and_batched_matrices_agree():
    img = _image()
    keys, kp, vis, bbox = _people(8)
    views = draw_views(1, 0, keys, 3, kp, vis, bbox, 'main', skeleton=COCO_MPII)
    for i in range(8):
        a, Ma = replay_view(img, bbox[i], views[2, i], STUDENT)
        b, Mb = replay_view(img.copy(), bbox[i].copy(), views[2, i].copy(), STUDENT)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(Ma, Mb)
    Ms = view_matrices(bbox, views[2], STUDENT)
    np.testing.assert_array_equal(Ms[3], replay_view(img, bbox[3], views[2, 3], STUDENT)[1])


def test_flipped_view_equals_mmpose_flip_then_warp():
    # mmpose: RandomFlip flips the image (x -> W-1-x) and the box centre, then RandomBBoxTransform shifts
    # and rotates in the flipped image, then TopdownAffine warps. Replay does it with one warp.
    img = _image(seed=3)
    H, W = img.shape[:2]
    bbox = np.array([120., 60., 300., 420.], np.float32)
    view = _view(flip=1, rotation=25.0, shift_x=0.1, shift_y=-0.05, scale=1.2)
    crop, M = replay_view(img, bbox, view, STUDENT)
    center, scale = bbox_xyxy2cs(bbox, padding=1.25)
    center = np.array([W - 1 - center[0], center[1]], np.float32)
    center = center + np.array([0.1, -0.05], np.float32) * scale
    scale = fix_aspect_ratio(scale * np.float32(1.2), STUDENT[0] / STUDENT[1])
    M_mm = get_warp_matrix(center, scale, np.float32(25.0), STUDENT)
    ref = cv2.warpAffine(cv2.flip(img, 1), M_mm, STUDENT, flags=cv2.INTER_LINEAR)
    # same map from original image to crop (mmpose's via the flipped image)
    pts = np.array([[150., 100.], [250., 380.], [0., 0.]])
    flipped_pts = np.stack([W - 1 - pts[:, 0], pts[:, 1]], 1)
    np.testing.assert_allclose(transform_points(pts, M), transform_points(flipped_pts, M_mm), atol=1e-3)
    diff = np.abs(crop.astype(int) - ref.astype(int))
    assert diff.max() <= 2 and (diff > 0).mean() < 0.02


@pytest.mark.parametrize('bbox', [[200., 80., 330., 400.],    # tall: same density as the student
                                  [150., 100., 420., 330.]])  # wide: the teacher zooms in
def test_teacher_sees_its_native_crop_of_the_view_box(bbox):
    img = _image(seed=4)
    bbox = np.array(bbox, np.float32)
    view = _view(flip=1, rotation=-30.0, scale=0.9, shift_x=0.05)
    s_crop, Ms = replay_view(img, bbox, view, STUDENT)
    t_crop, Mt = replay_view(img, bbox, view, TEACHER)
    assert t_crop.shape == (256, 256, 3)
    # the teacher's crop is what the view would give a model of its size alone: the box's aspect
    # fixed to the teacher's, not the student's crop grown
    center, box, rot, flip = view_box(bbox, view)
    M = get_warp_matrix(center, fix_aspect_ratio(box, 1.0), rot, TEACHER)
    np.testing.assert_allclose(Mt, compose_affine(flip_matrix(TEACHER[0]), M), atol=1e-6)
    # and its bins relate to the student's by the per-instance map
    bm = teacher_to_student_bins(STUDENT, TEACHER, view_box_scales(bbox[None], view[None]), 2.0, 2.0)
    p = np.array([[260., 200.], [210., 390.], [300., 120.]])
    ps, pt = transform_points(p, Ms) * 2, transform_points(p, Mt) * 2
    np.testing.assert_allclose(pt[:, 0], bm.ax[0] * ps[:, 0] + bm.bx[0], atol=2e-3)
    np.testing.assert_allclose(pt[:, 1], bm.ay[0] * ps[:, 1] + bm.by[0], atol=2e-3)
    tall = (bbox[2] - bbox[0]) < 0.75 * (bbox[3] - bbox[1])
    assert (bm.ax[0] == 1.0) == tall  # equal density exactly when the box is taller than both aspects


@pytest.mark.parametrize('flip', [0, 1])
def test_keypoints_follow_the_crop(flip):
    img = np.zeros((400, 500, 3), np.uint8)
    bbox = np.array([150., 60., 330., 380.], np.float32)
    kp = np.zeros((21, 2), np.float32)
    vis = np.zeros(21, np.float32)
    j = COCO_MPII.index('left_wrist')
    kp[j] = (290., 150.)
    vis[j] = 1
    cv2.circle(img, (290, 150), 4, (255, 255, 255), -1)
    view = _view(flip=flip, rotation=40.0, scale=1.1, shift_y=0.05)
    crop, M = replay_view(img, bbox, view, STUDENT)
    out, out_vis = view_keypoints(kp, vis, view, M, COCO_MPII.flip_indices)
    slot = COCO_MPII.index('right_wrist') if flip else j  # a flipped left wrist is the person's right wrist
    assert out_vis[slot] == 1 and out_vis.sum() == 1
    ys, xs = np.nonzero(crop[..., 0] > 128)
    np.testing.assert_allclose([xs.mean(), ys.mean()], out[slot], atol=0.75)
    # batched form agrees
    ob, vb = view_keypoints(kp[None], vis[None], view[None], M[None], COCO_MPII.flip_indices)
    np.testing.assert_array_equal(ob[0], out)
    np.testing.assert_array_equal(vb[0], out_vis)


def test_view_geometry_rejects_bad_view():
    with pytest.raises(ValueError, match='view'):
        view_geometry(np.zeros(4), np.zeros(3), STUDENT)
    assert len(VIEW_FIELDS) == NUM_VIEW_FIELDS and set(POLICIES) == {'main', 'final', 'wide', 'none'}


def test_wide_policy_is_final_with_a_scale_range_reaching_past_rtmposes():
    final, wide = POLICIES['final'], POLICIES['wide']
    assert wide.scale_factor == (0.75, 1.75) and final.scale_factor == (0.75, 1.25)
    assert {k: v for k, v in vars(wide).items() if k != 'scale_factor'} == \
        {k: v for k, v in vars(final).items() if k != 'scale_factor'}


def test_teacher_inputs_are_the_replayed_crops_and_the_view_box_scales():
    """The one builder of contract 2's inputs: each teacher's crop is replay_view's at its input size
    (its mirror where asked) and the scales are view_box_scales of the same rows."""
    from data.views import mirror_matrix, teacher_inputs, warp_crop
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    bbox = np.array([[20, 10, 90, 110], [40, 30, 120, 100]], np.float32)
    kpts = np.tile(np.array([[50, 50]], np.float32), (2, 21, 1))
    views = draw_views(0, 0, np.arange(2), 1, kpts, np.ones((2, 21), np.float32), bbox, 'final', skeleton=COCO_MPII)[0]
    sizes = {'a': (96, 128), 'b': (128, 128)}
    crops, scales = teacher_inputs([img, img], bbox, views, sizes, mirrored=[False, True])
    np.testing.assert_array_equal(scales, view_box_scales(bbox, views))
    for name, size in sizes.items():
        np.testing.assert_array_equal(crops[name][0], replay_view(img, bbox[0], views[0], size)[0])
        M = replay_view(img, bbox[1], views[1], size)[1]
        np.testing.assert_array_equal(crops[name][1], warp_crop(img, mirror_matrix(M, size), size))
