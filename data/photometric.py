"""Photometric augmentation of a crop: colours and texture only, never geometry (keypoints stay valid).

Mirrors the pixel-level part of RTMPose's training pipeline (mmpose 1.3 configs):
mmdet.YOLOXHSVRandomAug (hue 5, saturation 30, value 30), then Albumentation Blur (p=0.1),
MedianBlur (p=0.1) and CoarseDropout with one hole of 0.2-0.4 of the crop's height/width, filled with 0
(p=1.0 in stage 1, 0.5 in stage 2). Randomness comes only from the numpy Generator passed in.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class PhotometricPolicy:
    hue_delta: int = 5
    saturation_delta: int = 30
    value_delta: int = 30
    blur_prob: float = 0.1
    median_blur_prob: float = 0.1
    blur_limit: tuple[int, int] = (3, 7)  # odd kernel sizes drawn from this range (albumentations default)
    dropout_prob: float = 1.0
    dropout_size: tuple[float, float] = (0.2, 0.4)  # hole side as a fraction of the crop side


PHOTOMETRIC_POLICIES = {
    'main': PhotometricPolicy(),
    'final': PhotometricPolicy(dropout_prob=0.5),
    'none': PhotometricPolicy(hue_delta=0, saturation_delta=0, value_delta=0, blur_prob=0.0,
                              median_blur_prob=0.0, dropout_prob=0.0),
}


def get_photometric_policy(policy: PhotometricPolicy | str) -> PhotometricPolicy:
    if isinstance(policy, PhotometricPolicy):
        return policy
    try:
        return PHOTOMETRIC_POLICIES[policy]
    except KeyError:
        raise KeyError(f'unknown photometric policy {policy!r}; known: {sorted(PHOTOMETRIC_POLICIES)}') from None


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, hue_delta=5, saturation_delta=30,
               value_delta=30) -> np.ndarray:
    """YOLOXHSVRandomAug: each of h, s, v gets, with probability 1/2, an integer gain in
    (-delta, delta); hue wraps modulo 180, saturation and value clip to [0, 255]."""
    gains = rng.uniform(-1, 1, 3) * [hue_delta, saturation_delta, value_delta]
    gains = (gains * rng.integers(0, 2, 3)).astype(np.int16)
    if not gains.any():
        return image
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + gains[0]) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] + gains[1], 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + gains[2], 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


def _odd_kernel(rng: np.random.Generator, limit: tuple[int, int]) -> int:
    return int(rng.choice(np.arange(limit[0], limit[1] + 1, 2)))


def coarse_dropout(image: np.ndarray, rng: np.random.Generator, size=(0.2, 0.4)) -> np.ndarray:
    """One rectangular hole of side uniform(size) * crop side, at a uniform position, filled with 0."""
    h, w = image.shape[:2]
    hole_h = int(h * rng.uniform(*size))
    hole_w = int(w * rng.uniform(*size))
    y1 = int(rng.integers(0, h - hole_h + 1))
    x1 = int(rng.integers(0, w - hole_w + 1))
    out = image.copy()
    out[y1:y1 + hole_h, x1:x1 + hole_w] = 0
    return out


def photometric_augment(image: np.ndarray, rng: np.random.Generator,
                        policy: PhotometricPolicy | str = 'main') -> np.ndarray:
    """A new uint8 BGR image of the same shape; the input is not modified."""
    p = get_photometric_policy(policy)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'photometric_augment expects a uint8 HxWx3 BGR image, got {image.dtype} {image.shape}')
    out = hsv_jitter(image, rng, p.hue_delta, p.saturation_delta, p.value_delta)
    if rng.random() < p.blur_prob:
        k = _odd_kernel(rng, p.blur_limit)
        out = cv2.blur(out, (k, k))
    if rng.random() < p.median_blur_prob:
        out = cv2.medianBlur(out, _odd_kernel(rng, p.blur_limit))
    if rng.random() < p.dropout_prob:
        out = coarse_dropout(out, rng, p.dropout_size)
    return out if out is not image else image.copy()
