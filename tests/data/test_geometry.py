import numpy as np
import pytest

from data.geometry import (BinMap, bbox_cs2xyxy, bbox_xywh2xyxy, bbox_xyxy2cs, compose_affine, fix_aspect_ratio,
                           flip_matrix, get_warp_matrix, teacher_to_student_bins, transform_points)


def test_box_conversions_by_hand():
    xyxy = bbox_xywh2xyxy(np.array([[10., 20., 30., 40.]]))
    np.testing.assert_array_equal(xyxy, [[10, 20, 40, 60]])
    center, scale = bbox_xyxy2cs(np.array([10., 20., 40., 60.]), padding=1.25)
    np.testing.assert_array_equal(center, [25, 40])
    np.testing.assert_array_equal(scale, [37.5, 50])
    np.testing.assert_allclose(bbox_cs2xyxy(center, scale, padding=1.25), [10, 20, 40, 60])
    # batched shapes are kept
    c, s = bbox_xyxy2cs(np.zeros((5, 4)))
    assert c.shape == s.shape == (5, 2)


def test_off_image_box_is_not_clipped():
    # A box partly left of / above the image keeps its true centre (mmpose does not clip here).
    center, scale = bbox_xyxy2cs(np.array([-50., -20., 30., 60.]), padding=1.0)
    np.testing.assert_array_equal(center, [-10, 20])
    np.testing.assert_array_equal(scale, [80, 80])
    M = get_warp_matrix(center, scale, 0, (80, 80))
    np.testing.assert_allclose(transform_points(np.array([[-50., -20.], [30., 60.]]), M), [[0, 0], [80, 80]],
                               atol=1e-4)


def test_fix_aspect_ratio_only_grows():
    np.testing.assert_allclose(fix_aspect_ratio(np.array([100., 100.]), 0.75), [100, 133.33333], rtol=1e-6)
    np.testing.assert_allclose(fix_aspect_ratio(np.array([30., 100.]), 0.75), [75, 100])
    out = fix_aspect_ratio(np.array([[120., 100.], [30., 100.]]), 192 / 256)
    assert (out >= np.array([[120., 100.], [30., 100.]])).all()
    np.testing.assert_allclose(out[:, 0] / out[:, 1], 0.75)


def test_warp_maps_box_onto_crop():
    center, scale = np.array([100., 200.]), np.array([60., 80.])
    M = get_warp_matrix(center, scale, 0, (192, 256))
    pts = np.array([[70., 160.], [130., 240.], [100., 200.]])
    np.testing.assert_allclose(transform_points(pts, M), [[0, 0], [192, 256], [96, 128]], atol=1e-4)
    Minv = get_warp_matrix(center, scale, 0, (192, 256), inv=True)
    np.testing.assert_allclose(transform_points(transform_points(pts, M), Minv), pts, atol=1e-3)


def test_rotation_90_degrees_by_hand():
    # Box 100x100 at (50, 50) into a 100x100 crop rotated by 90 degrees: mmpose rotates the sampling box
    # counter-clockwise in image space (src direction (-w/2, 0) -> (0, -w/2)), so the image point above the
    # centre lands at the crop's left-centre, and the point right of the centre at the crop's top-centre.
    M = get_warp_matrix(np.array([50., 50.]), np.array([100., 100.]), 90, (100, 100))
    out = transform_points(np.array([[50., 0.], [100., 50.], [50., 50.]]), M)
    np.testing.assert_allclose(out, [[0, 50], [50, 0], [50, 50]], atol=1e-4)


def test_shift_moves_the_box():
    M = get_warp_matrix(np.array([50., 50.]), np.array([100., 100.]), 0, (100, 100), shift=(0.1, -0.2))
    # the new centre is center + scale * shift = (60, 30)
    np.testing.assert_allclose(transform_points(np.array([[60., 30.]]), M), [[50, 50]], atol=1e-4)


def test_flip_matrix_mirrors_about_crop_centre():
    F = flip_matrix(192)
    pts = np.array([[0., 5.], [96., 7.], [192., 9.], [10.5, 1.]])
    np.testing.assert_allclose(transform_points(pts, F[:2]), [[192, 5], [96, 7], [0, 9], [181.5, 1]])
    M = get_warp_matrix(np.array([50., 60.]), np.array([40., 80.]), 15, (192, 256))
    MF = compose_affine(F, M)
    p = np.array([[47., 70.]])
    np.testing.assert_allclose(transform_points(p, MF), transform_points(transform_points(p, M), F[:2]))
    # the box centre stays at the crop centre under the flip
    np.testing.assert_allclose(transform_points(np.array([[50., 60.]]), MF), [[96, 128]], atol=1e-4)


def test_transform_points_batched_and_dtype():
    rng = np.random.default_rng(0)
    Ms = rng.normal(size=(3, 2, 3))
    pts = rng.normal(size=(3, 21, 2)).astype(np.float32)
    out = transform_points(pts, Ms)
    assert out.dtype == np.float32 and out.shape == (3, 21, 2)
    for i in range(3):
        np.testing.assert_allclose(out[i], transform_points(pts[i], Ms[i]), rtol=1e-6)


def _crop_matrix(center, student_scale, rot, size, flip):
    scale = fix_aspect_ratio(student_scale, size[0] / size[1])
    M = get_warp_matrix(center, scale, rot, size)
    return compose_affine(flip_matrix(size[0]), M) if flip else M


@pytest.mark.parametrize('student,teacher,ss,ts', [
    ((192, 256), (256, 256), 2.0, 2.0),
    ((192, 256), (288, 384), 2.0, 2.0),   # same aspect, 1.5x resolution
    ((192, 256), (384, 288), 2.0, 2.0),   # teacher wider
    ((256, 256), (192, 256), 2.0, 2.0),   # teacher narrower than the student
    ((192, 256), (256, 256), 2.0, 3.0),   # different split ratios
])
def test_teacher_to_student_bins_matches_transformed_points(student, teacher, ss, ts):
    """Native crops of one box (each aspect fixed to its own size): per-instance maps, tall, square and
    wide boxes, rotated and flipped."""
    rng = np.random.default_rng(1)
    for trial in range(8):
        center = rng.uniform(50, 400, 2)
        box = rng.uniform(40, 300, 2).astype(np.float32)
        rot = rng.uniform(-80, 80) if trial % 2 else 0.0
        flip = trial >= 4
        Ms = _crop_matrix(center, box, rot, student, flip)
        Mt = _crop_matrix(center, box, rot, teacher, flip)
        bm = teacher_to_student_bins(student, teacher, box, ss, ts)
        rows = teacher_to_student_bins(student, teacher, np.stack([box, box[::-1]]), ss, ts)
        assert (float(rows.ax[0]), float(rows.bx[0]), float(rows.by[0])) == (bm.ax, bm.bx, bm.by)
        pts = center + rng.normal(0, 100, (20, 2))
        s_bins = transform_points(pts, Ms) * ss
        t_bins = transform_points(pts, Mt) * ts
        np.testing.assert_allclose(t_bins[:, 0], bm.ax * s_bins[:, 0] + bm.bx, atol=2e-3)
        np.testing.assert_allclose(t_bins[:, 1], bm.ay * s_bins[:, 1] + bm.by, atol=2e-3)


def test_teacher_to_student_bins_known_values():
    tall, square = np.array([60., 200.], np.float32), np.array([150., 150.], np.float32)
    # a tall box: both crops have the box height, equal density -> an exact shift of 64 x-bins
    assert teacher_to_student_bins((192, 256), (256, 256), tall, 2, 2) == BinMap(ax=1.0, bx=64.0, ay=1.0, by=0.0)
    # a square box: the MPII teacher's crop is the box itself, the student's is 4/3 taller
    bm = teacher_to_student_bins((192, 256), (256, 256), square, 2, 2)
    np.testing.assert_allclose((bm.ax, bm.bx, bm.ay, bm.by), (4 / 3, 0.0, 4 / 3, -256 / 3), rtol=1e-12)
    bm = teacher_to_student_bins((192, 256), (288, 384), square, 2, 2)
    assert (bm.ax, bm.bx, bm.ay, bm.by) == (1.5, 0.0, 1.5, 0.0)
    assert teacher_to_student_bins((192, 256), (192, 256), square) == BinMap(1.0, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        teacher_to_student_bins((0, 256), (192, 256), square)
    with pytest.raises(ValueError, match='box_scale'):
        teacher_to_student_bins((192, 256), (256, 256), np.zeros(2))
