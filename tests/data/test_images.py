import cv2
import numpy as np
import pytest

from data.images import DecodedImages, ImageError, decode_grouped, read_image
from tests.conftest import REAL_SAMPLES


def _write_jpeg(path, seed=0, size=(48, 64)):
    img = np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def test_read_image_is_bgr_like_imread(tmp_path):
    p = _write_jpeg(tmp_path / 'a.jpg')
    img = read_image(p)
    assert img.dtype == np.uint8 and img.shape == (48, 64, 3)
    np.testing.assert_array_equal(img, cv2.imread(str(p), cv2.IMREAD_COLOR))


def test_grouped_decode_decodes_each_file_once(tmp_path):
    a = _write_jpeg(tmp_path / 'a.jpg', 0)
    b = _write_jpeg(tmp_path / 'b.png', 1)
    dec = decode_grouped([a, b, a, a, b])
    assert isinstance(dec, DecodedImages) and len(dec) == 5
    assert len(dec.images) == 2 and dec.paths == [str(a), str(b)]
    np.testing.assert_array_equal(dec.index, [0, 1, 0, 0, 1])
    assert dec[0] is dec[2] is dec[3]
    np.testing.assert_array_equal(dec[1], cv2.imread(str(b)))
    assert dec.ok.all() and dec.num_skipped_instances == 0


@pytest.mark.parametrize('kind', ['missing', 'corrupt', 'truncated', 'empty', 'directory'])
def test_bad_files_raise_naming_the_file(tmp_path, kind):
    good = _write_jpeg(tmp_path / 'good.jpg')
    bad = tmp_path / f'bad_{kind}.jpg'
    if kind == 'corrupt':
        bad.write_bytes(b'this is not an image at all' * 10)
    elif kind == 'truncated':
        data = (_write_jpeg(tmp_path / 'full.jpg', 2, (200, 200))).read_bytes()
        bad.write_bytes(data[:len(data) // 2])
    elif kind == 'empty':
        bad.write_bytes(b'')
    elif kind == 'directory':
        bad.mkdir()
    with pytest.raises(ImageError) as info:
        decode_grouped([good, bad, good])
    assert str(bad) in str(info.value) and info.value.path == str(bad)


def test_skip_mode_counts_and_never_returns_a_blank_image(tmp_path):
    good = _write_jpeg(tmp_path / 'good.jpg')
    corrupt = tmp_path / 'corrupt.jpg'
    corrupt.write_bytes(b'\xff\xd8garbage\xff\xd9')
    missing = tmp_path / 'missing.jpg'
    dec = decode_grouped([good, corrupt, missing, corrupt, good], skip_errors=True)
    np.testing.assert_array_equal(dec.ok, [True, False, False, False, True])
    assert dec.num_skipped_instances == 3 and dec.num_skipped_images == 2
    assert dec[1] is None and dec[2] is None and dec[0] is not None
    assert set(dec.errors) == {str(corrupt), str(missing)}
    assert 'not found' in dec.errors[str(missing)]


def test_real_coco_image_decodes():
    files = sorted((REAL_SAMPLES / 'coco' / 'images').glob('*.jpg'))
    if not files:
        pytest.skip(f'real samples missing under {REAL_SAMPLES}')
    img = read_image(files[0])
    np.testing.assert_array_equal(img, cv2.imread(str(files[0]), cv2.IMREAD_COLOR))
