"""Seeded inputs for the mmpose parity checks that both sides draw identically: the mmpose reference
(scripts/mmpose_reference.py, in its own environment) and the native side (tests/parity/test_golden.py,
no mmpose). Only numpy's PCG64 `random()` is used (53 bits of one 64-bit draw, the same on every
machine and numpy version), one generator per name, so a model's weights depend on its parameter
names and shapes only, not on how the modules were built.

numpy only: this file is imported by both environments.
"""
from __future__ import annotations

import hashlib

import numpy as np


def uniform(seed: int, name: str, shape, low: float, high: float) -> np.ndarray:
    """float32 values in [low, high) drawn by the generator of (seed, name)."""
    digest = hashlib.sha256(f'{seed}/{name}'.encode()).digest()
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(digest[:8], 'little')))
    return (low + (high - low) * rng.random(tuple(shape))).astype(np.float32)


def weights(shapes: dict, seed: int) -> dict:
    """{parameter name: float32 array} for a state dict's {name: shape} (integer buffers left out).
    Convolutions and linears: uniform with unit variance gain (bound sqrt(3 / fan_in)); BatchNorm
    affine and running statistics away from identity, so eval-mode BN is exercised; ScaleNorm gains
    and residual scales around 1; other vectors small."""
    batchnorms = {n[:-len('.running_mean')] for n in shapes if n.endswith('.running_mean')}
    out = {}
    for name, shape in shapes.items():
        prefix, _, leaf = name.rpartition('.')
        if leaf == 'num_batches_tracked':
            continue
        if prefix in batchnorms:
            low, high = {'weight': (0.5, 1.5), 'bias': (-0.2, 0.2), 'running_mean': (-0.2, 0.2),
                         'running_var': (0.5, 2.0)}[leaf]
        elif leaf == 'g' or name.endswith('res_scale.scale'):
            low, high = 0.5, 1.5
        elif len(shape) >= 2:
            bound = float(np.sqrt(3.0 / int(np.prod(shape[1:]))))
            low, high = -bound, bound
        else:
            low, high = -0.1, 0.1
        out[name] = uniform(seed, name, shape, low, high)
    return out


def images(seed: int, batch: int, height: int, width: int) -> np.ndarray:
    """uint8 BGR images (batch, height, width, 3)."""
    return np.floor(uniform(seed, 'images', (batch, height, width, 3), 0, 256)).clip(0, 255).astype(np.uint8)


def gray_ramp() -> np.ndarray:
    """One (1, 1, 256, 3) uint8 image holding every pixel value once, equal in the three channels:
    a preprocessor's output on it is its whole per-channel lookup table."""
    return np.repeat(np.arange(256, dtype=np.uint8)[None, None, :, None], 3, axis=3)


def codec_inputs(seed: int, num_keypoints: int, width: int, height: int, split_ratio: float) -> dict:
    """Keypoints (some outside the input, one on its last pixel), visibilities and SimCC logits for
    the codec checks. width, height: the model input; split_ratio: SimCC bins per pixel."""
    n = 2
    keypoints = np.stack([uniform(seed, 'keypoints_x', (n, num_keypoints), -25, width + 25),
                          uniform(seed, 'keypoints_y', (n, num_keypoints), -25, height + 25)], axis=-1)
    keypoints[0, :3] = [[-100, 10], [10, height + 200], [width - 0.25, height - 0.75]]
    choice = np.array([0, 1, 1, 1, 0.3], np.float32)
    visible = choice[np.floor(uniform(seed, 'visible', (n, num_keypoints), 0, len(choice))).astype(int)]
    simcc_x = uniform(seed, 'simcc_x', (n, num_keypoints, int(width * split_ratio)), -3, 3)
    simcc_y = uniform(seed, 'simcc_y', (n, num_keypoints, int(height * split_ratio)), -3, 3)
    simcc_x[0, 0] = -np.abs(simcc_x[0, 0]) - 0.01  # a joint whose best logit is negative
    return dict(keypoints=keypoints.astype(np.float32), visible=visible, simcc_x=simcc_x, simcc_y=simcc_y)


def nms_inputs(seed: int, trial: int) -> dict:
    """One OKS-NMS case: 1-11 COCO-17 poses jittered by 0.2-20 px around 3 bases (so that some are
    suppressed, some not), scores,
    areas (float64, as the evaluator passes them)."""
    def draw(what, shape, low, high):
        return uniform(seed, f'nms{trial}/{what}', shape, low, high).astype(np.float64)
    m = 1 + int(draw('count', (1,), 0, 11)[0])
    base = draw('base', (3, 17, 2), 0, 300)
    pick = np.floor(draw('pick', (m,), 0, 3)).astype(int)
    keypoints = base[pick] + draw('jitter', (m, 17, 2), -1, 1) * np.exp(draw('spread', (m, 1, 1), -1.6, 3.0))
    return dict(keypoints=keypoints, scores=draw('scores', (m,), 0, 1), areas=draw('areas', (m,), 2000, 20000))


def pckh_inputs(seed: int, n: int = 200) -> dict:
    """MPII predictions around the truth at 0-0.6 head sizes, some joints invisible."""
    def draw(what, shape, low, high):
        return uniform(seed, f'pckh/{what}', shape, low, high).astype(np.float64)
    truth = draw('truth', (n, 16, 2), 0, 300)
    head = draw('head', (n,), 20, 60)
    pred = truth + draw('error', (n, 16, 2), -1, 1) * head[:, None, None] * draw('scale', (n, 16, 1), 0.05, 0.6)
    return dict(pred=pred, truth=truth, visible=draw('visible', (n, 16), 0, 1) > 0.2, head=head)
