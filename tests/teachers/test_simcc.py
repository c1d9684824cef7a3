import numpy as np
import pytest
import torch

from teachers.simcc import SimCCCodec, get_simcc_maximum, map_teacher_logits, simcc_to_keypoints


def _codec(w=192, h=256, sigma=(4.9, 5.66)):
    return SimCCCodec((w, h), sigma, 2.0)


def test_encode_decode_round_trip_to_bin_accuracy():
    codec = _codec()
    rng = np.random.default_rng(0)
    kpts = rng.uniform([0, 0], [191.7, 255.7], size=(5, 17, 2)).astype(np.float32)
    enc = codec.encode(kpts, np.ones((5, 17), np.float32))
    assert enc['keypoint_x_labels'].shape == (5, 17, 384)
    assert enc['keypoint_y_labels'].shape == (5, 17, 512)
    assert enc['keypoint_x_labels'].dtype == np.float32
    np.testing.assert_array_equal(enc['keypoint_weights'], 1)
    dec, scores = codec.decode(enc['keypoint_x_labels'], enc['keypoint_y_labels'])
    # one bin is 1 / split_ratio = 0.5 px; rounding to the nearest bin errs by at most half of it
    assert np.abs(dec - kpts).max() <= 0.25 + 1e-6
    np.testing.assert_allclose(scores, 1.0)  # unnormalised Gaussians peak at exp(0)


def test_gaussian_shape_follows_sigma():
    codec = _codec(sigma=(4.0, 3.0))
    enc = codec.encode(np.array([[[50.0, 60.0]]]), np.ones((1, 1)))
    lx, ly = enc['keypoint_x_labels'][0, 0], enc['keypoint_y_labels'][0, 0]
    assert lx.argmax() == 100 and ly.argmax() == 120
    np.testing.assert_allclose(lx[100 + 4], np.exp(-0.5), rtol=1e-6)
    np.testing.assert_allclose(ly[120 - 6], np.exp(-2.0), rtol=1e-6)


def test_far_outside_and_invisible_keypoints_get_no_label():
    codec = _codec()
    kpts = np.array([[[-40.0, 100.0],   # x support (3 sigma = 14.7 bins) entirely left of the input
                      [100.0, 300.0],   # y below the input by far more than 3 sigma
                      [-1.0, 100.0],    # just outside: mmpose keeps a truncated Gaussian, weight 1
                      [50.0, 50.0]]])   # invisible
    vis = np.array([[1.0, 1.0, 1.0, 0.0]], np.float32)
    enc = codec.encode(kpts, vis)
    np.testing.assert_array_equal(enc['keypoint_weights'], [[0, 0, 1, 0]])
    for j in (0, 1, 3):
        assert not enc['keypoint_x_labels'][0, j].any() and not enc['keypoint_y_labels'][0, j].any()
    assert enc['keypoint_x_labels'][0, 2, 0] > 0


def test_decode_marks_non_positive_scores_and_torch_decoder_agrees():
    rng = np.random.default_rng(1)
    sx = rng.normal(size=(3, 7, 384)).astype(np.float32)
    sy = rng.normal(size=(3, 7, 512)).astype(np.float32)
    sx[0, 0] = -np.abs(sx[0, 0]) - 0.1  # every value negative -> score <= 0 -> location -1
    kp, sc = _codec().decode(sx, sy)
    assert kp.shape == (3, 7, 2) and sc.shape == (3, 7)
    np.testing.assert_array_equal(kp[0, 0], [-0.5, -0.5])
    np.testing.assert_array_equal(kp[1, 2], [sx[1, 2].argmax() / 2, sy[1, 2].argmax() / 2])
    np.testing.assert_array_equal(sc, np.minimum(sx.max(-1), sy.max(-1)))
    tk, ts = simcc_to_keypoints(torch.from_numpy(sx), torch.from_numpy(sy), 2.0)
    np.testing.assert_array_equal(tk.numpy(), kp)
    np.testing.assert_array_equal(ts.numpy(), sc)
    locs, _ = get_simcc_maximum(sx[0], sy[0])  # (K, W) inputs keep their rank
    assert locs.shape == (7, 2)


def test_from_config_refuses_unsupported_options():
    cfg = dict(type='SimCCLabel', input_size=(192, 256), sigma=(4.9, 5.66), simcc_split_ratio=2.0,
               normalize=False, use_dark=False)
    assert SimCCCodec.from_config(cfg).num_bins_y == 512
    with pytest.raises(ValueError, match='use_dark'):
        SimCCCodec.from_config({**cfg, 'use_dark': True})
    with pytest.raises(ValueError, match='normalize'):
        SimCCCodec.from_config({k: v for k, v in cfg.items() if k != 'normalize'})  # mmpose default True


def test_map_teacher_logits_shift_is_exact_gather():
    torch.manual_seed(0)
    teacher = torch.randn(4, 17, 512) * 3
    student, outside = map_teacher_logits(teacher, 1, 64, 384)
    log_p = torch.log_softmax(teacher, -1)
    assert torch.equal(student, log_p[..., 64:448])
    p = log_p.exp()
    torch.testing.assert_close(outside, p[..., :64].sum(-1) + p[..., 448:].sum(-1))


def test_map_teacher_logits_scale_matches_transformed_keypoints():
    # student pixel u -> teacher pixel 1.5 u + 7.3 (teacher sees the same content 1.5x larger)
    s, o, split = 1.5, 7.3, 2.0
    a, b = s, split * o  # teacher_bin = split * (s * student_bin / split + o)
    student_codec, teacher_codec = SimCCCodec((128, 128), 2.0), SimCCCodec((224, 224), 6.0)
    rng = np.random.default_rng(2)
    kp_student = rng.uniform(5, 120, size=(1, 9, 2))
    kp_teacher = kp_student * s + o
    enc = teacher_codec.encode(kp_teacher, np.ones((1, 9)))
    # log of an unnormalised Gaussian is a valid logit vector for that Gaussian
    logits = torch.from_numpy(np.log(np.maximum(enc['keypoint_x_labels'], 1e-30)))
    mapped, outside = map_teacher_logits(logits, a, b, student_codec.num_bins_x)
    decoded_px = mapped.argmax(-1).numpy() / split
    # error: half a student bin from sampling + half a teacher bin from the teacher's own rounding
    tol = (0.5 + 0.5 / a) / split + 1e-6
    assert np.abs(decoded_px - kp_student[..., 0]).max() <= tol
    assert outside.max() < 1e-6  # Gaussians well inside the student crop


def test_outside_mass_counts_partial_bins():
    torch.manual_seed(3)
    logits = torch.randn(2, 5, 100)
    a, b, n = 0.75, 10.4, 80  # student span in teacher positions: [10.025, 69.65]
    _, outside = map_teacher_logits(logits, a, b, n)
    # brute force: sample each teacher bin densely and count samples outside the span
    p = torch.softmax(logits.double(), -1)
    offsets = (torch.arange(10000, dtype=torch.float64) + 0.5) / 10000 - 0.5
    pos = torch.arange(100, dtype=torch.float64)[:, None] + offsets
    lo, hi = b - a / 2, b + a * (n - 0.5)
    frac_out = ((pos < lo) | (pos > hi)).double().mean(-1)
    expected = (p * frac_out).sum(-1)
    torch.testing.assert_close(outside.double(), expected, atol=1e-4, rtol=0)


def test_student_bins_the_teacher_cannot_see_get_no_mass():
    torch.manual_seed(4)
    logits = torch.randn(3, 2, 256)
    student, outside = map_teacher_logits(logits, 1, -40, 300)  # student bins 0..39, 296..299 unseen
    assert torch.isneginf(student[..., :40]).all() and torch.isneginf(student[..., 296:]).all()
    torch.testing.assert_close(student[..., 40:296], torch.log_softmax(logits, -1))
    assert outside.abs().max() < 1e-6  # the whole teacher crop lies inside the student's
    with pytest.raises(ValueError, match='> 0'):
        map_teacher_logits(logits, 0.0, 0.0, 10)


def test_per_row_maps_equal_row_by_row_maps():
    torch.manual_seed(5)
    logits = torch.randn(4, 3, 256)
    a = np.array([1.0, 1.3333333, 0.75, 1.0])
    b = np.array([32.0, 0.0, 10.25, -20.0])
    student, outside = map_teacher_logits(logits, a, b, 192)
    for i in range(4):
        s_i, o_i = map_teacher_logits(logits[i:i + 1], float(a[i]), float(b[i]), 192)
        assert torch.equal(student[i:i + 1], s_i) and torch.equal(outside[i:i + 1], o_i)
    with pytest.raises(ValueError, match='per row'):
        map_teacher_logits(logits, a[:3], b[:3], 192)


def test_mirror_simcc_is_the_crop_mirror_exactly_and_plain_reversal_is_one_bin_off():
    """Labels of keypoints mirrored in crop pixels (u -> W - u, data.views.mirror_matrix) equal the
    original labels mirrored by mirror_simcc, bin for bin; mmpose's flip_vectors (reversal only)
    puts every peak one bin away. numpy and torch agree; joints swap by the flip indices."""
    from data.geometry import flip_matrix, transform_points
    from teachers.simcc import mirror_simcc
    codec = _codec()
    rng = np.random.default_rng(1)
    kpts = rng.uniform([4, 4], [188, 252], size=(3, 4, 2)).astype(np.float32)
    flip = np.array([1, 0, 3, 2])
    enc = codec.encode(kpts, np.ones((3, 4), np.float32))
    mirrored = transform_points(kpts, flip_matrix(192)[:2])[:, flip]
    enc_m = codec.encode(mirrored.astype(np.float32), np.ones((3, 4), np.float32))
    mx, my = mirror_simcc(enc['keypoint_x_labels'], enc['keypoint_y_labels'], flip)
    np.testing.assert_allclose(mx, enc_m['keypoint_x_labels'], atol=1e-6)
    np.testing.assert_array_equal(my, enc_m['keypoint_y_labels'])
    reversed_only = enc['keypoint_x_labels'][:, flip, ::-1]
    assert (reversed_only.argmax(-1) == enc_m['keypoint_x_labels'].argmax(-1) - 1).all()
    tx, ty = mirror_simcc(torch.from_numpy(enc['keypoint_x_labels']), torch.from_numpy(enc['keypoint_y_labels']), flip)
    np.testing.assert_array_equal(tx.numpy(), mx)
    np.testing.assert_array_equal(ty.numpy(), my)
    # its own inverse, but for the edge bin it cannot know (bin 0 repeats bin 1)
    back = mirror_simcc(mx, my, flip)[0]
    np.testing.assert_array_equal(back[..., 1:], enc['keypoint_x_labels'][..., 1:])
