"""Image decoding, grouped by image: a batch of instances decodes each distinct file once.

Decoding is mmpose's LoadImage with the cv2 backend: the file's bytes through cv2.imdecode(IMREAD_COLOR)
(BGR uint8, EXIF orientation applied), the same pixels cv2.imread gives. A file that is missing,
unreadable, not an image, or a JPEG cut short raises ImageError naming the file; with skip_errors the
instances of that file are counted and left without an image (None), never given a blank one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np


class ImageError(ValueError):
    """An image file that cannot be used; str() names the file and the problem."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f'{self.path}: {reason}')


_JPEG_SOI = b'\xff\xd8'
_JPEG_EOI = b'\xff\xd9'
# Some writers pad after the end-of-image marker; look for it in this many trailing bytes.
_JPEG_TAIL = 1024


def read_image(path) -> np.ndarray:
    """BGR uint8 (H, W, 3) of one file, or ImageError."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(path, 'file not found') from None
    except IsADirectoryError:
        raise ImageError(path, 'is a directory, not an image file') from None
    except OSError as e:
        raise ImageError(path, f'cannot read: {e.strerror or e}') from None
    if data.size == 0:
        raise ImageError(path, 'empty file')
    head = data[:2].tobytes()
    # libjpeg decodes a truncated JPEG with a grey bottom and only a warning: refuse it instead.
    if head == _JPEG_SOI and _JPEG_EOI not in data[-_JPEG_TAIL:].tobytes():
        raise ImageError(path, 'truncated JPEG (no end-of-image marker)')
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(path, f'not a decodable image ({data.size} bytes)')
    return image


@dataclass
class DecodedImages:
    """The distinct images of a batch and, for each instance, which one is its image."""
    paths: list[str]  # distinct paths, in order of first appearance
    images: list[np.ndarray | None]  # aligned with paths; None for a skipped file
    index: np.ndarray  # (N,) int64 per instance: position in paths/images
    errors: dict[str, str] = field(default_factory=dict)  # skipped path -> reason

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> np.ndarray | None:
        """Image of instance i (shared between instances of one file; do not modify), None if skipped."""
        return self.images[self.index[i]]

    @property
    def ok(self) -> np.ndarray:
        """(N,) bool: instances whose image decoded."""
        good = np.array([img is not None for img in self.images], dtype=bool)
        return good[self.index] if len(self.index) else np.zeros(0, bool)

    @property
    def num_skipped_instances(self) -> int:
        return int((~self.ok).sum())

    @property
    def num_skipped_images(self) -> int:
        return len(self.errors)


def decode_grouped(image_paths, skip_errors: bool = False) -> DecodedImages:
    """Decode each distinct path of `image_paths` (one per instance) once.

    skip_errors=False: the first bad file raises ImageError. True: bad files are recorded in .errors
    and their instances get None (see .ok, .num_skipped_instances).
    """
    paths: list[str] = []
    position: dict[str, int] = {}
    index = np.empty(len(image_paths), dtype=np.int64)
    for i, p in enumerate(image_paths):
        p = str(p)
        if p not in position:
            position[p] = len(paths)
            paths.append(p)
        index[i] = position[p]
    images: list[np.ndarray | None] = []
    errors: dict[str, str] = {}
    for p in paths:
        try:
            images.append(read_image(p))
        except ImageError as e:
            if not skip_errors:
                raise
            errors[p] = e.reason
            images.append(None)
    return DecodedImages(paths=paths, images=images, index=index, errors=errors)


def check_image_files(image_paths) -> None:
    """Pre-flight before a long job: every distinct file exists and starts like an image (JPEG, PNG,
    BMP, WebP, TIFF header; its first bytes only, nothing decoded). Raises ImageError naming the first
    bad file and how many others are bad."""
    bad = []
    for p in dict.fromkeys(str(p) for p in image_paths):
        try:
            with open(p, 'rb') as f:
                head = f.read(12)
        except FileNotFoundError:
            bad.append((p, 'file not found'))
            continue
        except OSError as e:
            bad.append((p, f'cannot read: {e.strerror or e}'))
            continue
        if not head:
            bad.append((p, 'empty file'))
        elif not (head.startswith((_JPEG_SOI, b'\x89PNG', b'BM', b'II*\x00', b'MM\x00*'))
                  or (head[:4] == b'RIFF' and head[8:12] == b'WEBP')):
            bad.append((p, 'not an image file (unknown header)'))
    if bad:
        path, reason = bad[0]
        more = f' ({len(bad) - 1} more bad image files)' if len(bad) > 1 else ''
        raise ImageError(path, reason + more)
