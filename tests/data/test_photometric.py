import numpy as np
import pytest

from data.photometric import PHOTOMETRIC_POLICIES, PhotometricPolicy, coarse_dropout, hsv_jitter, photometric_augment


def _crop(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (256, 192, 3), dtype=np.uint8)


def test_zero_probabilities_are_a_no_op():
    img = _crop()
    out = photometric_augment(img, np.random.default_rng(1), 'none')
    np.testing.assert_array_equal(out, img)
    assert out is not img


def test_geometry_untouched_and_input_not_modified():
    img = _crop()
    before = img.copy()
    always = PhotometricPolicy(blur_prob=1.0, median_blur_prob=1.0, dropout_prob=1.0)
    for seed in range(5):
        out = photometric_augment(img, np.random.default_rng(seed), always)
        assert out.shape == img.shape and out.dtype == np.uint8
        assert not np.array_equal(out, img)
    np.testing.assert_array_equal(img, before)


def test_seeded_by_the_generator():
    img = _crop()
    a = photometric_augment(img, np.random.default_rng(7), 'main')
    b = photometric_augment(img, np.random.default_rng(7), 'main')
    np.testing.assert_array_equal(a, b)


def test_dropout_hole_size_and_fill():
    img = np.full((200, 100, 3), 255, np.uint8)
    for seed in range(20):
        out = coarse_dropout(img, np.random.default_rng(seed), (0.2, 0.4))
        ys, xs = np.nonzero(out[..., 0] == 0)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert 40 <= h <= 80 and 20 <= w <= 40 and len(ys) == h * w


def test_hsv_jitter_zero_deltas_keep_pixels():
    img = _crop(3)
    np.testing.assert_array_equal(hsv_jitter(img, np.random.default_rng(0), 0, 0, 0), img)


def test_rejects_non_bgr_images():
    with pytest.raises(ValueError, match='uint8'):
        photometric_augment(np.zeros((4, 4), np.float32), np.random.default_rng(0))
    assert set(PHOTOMETRIC_POLICIES) == {'main', 'final', 'none'}
