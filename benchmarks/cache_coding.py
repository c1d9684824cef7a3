"""How far the cache's coded rows are from the smallest lossless storage of the same codes: other
lossless layouts of the codes through each cache codec, and the entropy bounds a context-modelling
coder could reach.

The codes are the configs' (cache.levels, each bin rounded to its nearest code, cache/window.py), on
the same replayed train views as benchmarks/cache_window.py. Every layout below stores exactly these
codes, so the students trained from them are the same; only the bytes and the writer's speed change.
  deltas          the cache's layout: bin-to-bin differences of the codes (zigzag bytes)
  outward deltas  differences taken outward from each row's peak (first top code): both flanks then
                  fall, so the deltas share one sign (zigzag bytes; decodes with one cumulative sum)
  codes           the codes themselves
  2nd deltas      differences of the deltas (zigzag bytes)
each through the cache's codecs (cache.store.CODECS; the default first), bytes per
instance·view·teacher row (all joints, x and y; the codes only, without the tail and the seen range)
and the codec's encode speed in MB/s of raw bytes (one core).
Entropy bounds, bytes per row: what an ideal entropy coder stores for the deltas with one static table
per context value (fitted on the other half of the sampled instances, the tables themselves free),
alone (order 0) and given a context a decoder going left to right knows: the previous code, whether
the row's top code came before (which flank of the peak the bin is on), the last two deltas; or given
the distance to the peak and the flank (the peak's position must then be stored too: 'peak positions').
Last stdout line: one JSON object.

    python benchmarks/cache_coding.py [--config pipeline/configs/demo_synthetic.py] [--rows 256]
        [--student-size 192,256]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cache_window import compressed_bytes, sample_teacher_rows  # noqa: E402
from cache.store import CODECS, DEFAULT_CODEC  # noqa: E402
from cache.window import encode_window, undo_zigzag_deltas, zigzag_bytes  # noqa: E402
from pipeline.config import load_config, parse_cfg_options, resolve  # noqa: E402
from pipeline.run import pick_device  # noqa: E402


def peak_index(codes: np.ndarray) -> np.ndarray:
    """Each row's first bin holding its largest code."""
    return np.argmax(codes, axis=-1)


def outward_deltas(codes: np.ndarray) -> np.ndarray:
    """Differences taken outward from each row's peak: left of it c[i] - c[i+1], right of it
    c[i] - c[i-1], at the peak the code itself. Both flanks of a one-peaked row are then <= 0."""
    c = codes.astype(np.int64)
    i = np.arange(c.shape[-1])
    p = peak_index(c)[..., None]
    left = c - np.concatenate([c[..., 1:], np.zeros_like(c[..., :1])], axis=-1)
    right = c - np.concatenate([np.zeros_like(c[..., :1]), c[..., :-1]], axis=-1)
    return np.where(i < p, left, np.where(i > p, right, c))


def undo_outward_deltas(d: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """Inverse of outward_deltas given each row's peak bin: cumulative sums out from the peak."""
    i = np.arange(d.shape[-1])
    p = peak[..., None]
    # right of (and at) the peak: the running sum from the peak; left of it: the reversed running sum.
    right = np.cumsum(np.where(i >= p, d, 0), axis=-1)
    left = np.flip(np.cumsum(np.flip(np.where(i <= p, d, 0), axis=-1), axis=-1), axis=-1)
    return np.where(i >= p, right, left)


def second_deltas(codes: np.ndarray) -> np.ndarray:
    d = np.diff(codes.astype(np.int64), axis=-1, prepend=0)
    return np.diff(d, axis=-1, prepend=0)


def conditional_code_bytes(symbols: np.ndarray, context: np.ndarray, fold: np.ndarray) -> float:
    """Bytes an ideal coder with one static table per context value stores, each table fitted on the
    other fold's rows (counts + 1/2, the model itself not counted): an honest estimate, as the plug-in
    entropy of a sample undercounts when contexts are many."""
    s = np.unique(np.asarray(symbols).ravel(), return_inverse=True)[1]
    c = np.unique(np.asarray(context).ravel(), return_inverse=True)[1]
    f = np.broadcast_to(fold, np.shape(symbols)).ravel()
    bits = 0.0
    for held in (False, True):
        table = np.zeros((c.max() + 1, s.max() + 1))
        np.add.at(table, (c[f != held], s[f != held]), 1)
        p = (table + 0.5) / (table.sum(1, keepdims=True) + 0.5 * table.shape[1])
        bits -= np.log2(p[c[f == held], s[f == held]]).sum()
    return bits / 8


def entropy_bounds(codes: np.ndarray, fold: np.ndarray) -> dict:
    """Bytes of the deltas under each context (codes: rows x bins, one joint axis per row; fold: each
    row's half, bool)."""
    c = codes.astype(np.int64)
    d = np.diff(c, axis=-1, prepend=0)
    def before(a, k):  # each bin's value k bins to its left (0 past the row's start)
        return np.concatenate([np.zeros_like(a[:, :k]), a[:, :-k]], axis=-1)
    prev = before(c, 1)
    trend = (np.clip(before(d, 1), -3, 3) + 3) * 5 + np.clip(before(d, 2), -2, 2) + 2
    i = np.arange(c.shape[-1])
    p = peak_index(c)[:, None]
    # right of the peak = a top code came before: a decoder going left to right knows it
    right = np.broadcast_to(i > p, c.shape).astype(np.int64)
    distance = np.broadcast_to(np.minimum(np.abs(i - p), 255), c.shape)
    none, fold = np.zeros_like(d), fold[:, None]
    return {'order 0': conditional_code_bytes(d, none, fold),
            'outward, order 0': conditional_code_bytes(outward_deltas(c), none, fold),
            'previous code': conditional_code_bytes(d, prev, fold),
            'previous code, peak passed': conditional_code_bytes(d, prev * 2 + right, fold),
            'previous code (to 12), peak passed, last two deltas':
                conditional_code_bytes(d, (np.minimum(prev, 12) * 2 + right) * 35 + trend, fold),
            'distance to peak, flank': conditional_code_bytes(d, distance * 2 + right, fold),
            'peak positions, order 0': conditional_code_bytes(p, np.zeros_like(p), fold)}


def stored_size_and_speed(arrays: list[np.ndarray], codec: str, repeats: int = 3) -> dict:
    """Bytes the arrays take through one codec, and MB/s of raw bytes stored (best of a few runs;
    includes Zarr's own overhead)."""
    best = float('inf')
    for _ in range(repeats):
        t = time.perf_counter()
        size = compressed_bytes(arrays, codec)
        best = min(best, time.perf_counter() - t)
    return dict(bytes=size, encode_mb_s=sum(a.nbytes for a in arrays) / best / 1e6)


def measure(cfg, rows: int, device, student_size: tuple | None = None) -> dict:
    """Every layout x codec and every entropy estimate of each teacher's codes on `rows` sampled train
    instances (printing a table on the way)."""
    n, bins, sampled = sample_teacher_rows(cfg, rows, device, student_size)
    levels = int(cfg.cache.levels)
    codecs = [DEFAULT_CODEC] + sorted(c for c in CODECS if c != DEFAULT_CODEC)
    result = dict(rows=n, bins=list(bins), levels=levels, codecs=codecs, teachers={})
    print(f'{n} rows, bins {bins[0]} x {bins[1]}, L = {levels}; bytes per row (MB/s of raw bytes encoded)')
    layouts = {'deltas': lambda c: zigzag_bytes(np.diff(c, axis=-1, prepend=0)),
               'outward deltas': lambda c: zigzag_bytes(outward_deltas(c)),
               'codes': lambda c: c.astype(np.uint8),
               '2nd deltas': lambda c: zigzag_bytes(second_deltas(c))}
    for name, (sx, sy, _, _) in sampled.items():
        codes = {}
        for axis, r in (('x', sx), ('y', sy)):
            w = r.shape[-1]
            stored = encode_window(r, w, 1, levels, 0.0)[1].reshape(-1, w)
            codes[axis] = undo_zigzag_deltas(stored).astype(np.int64)
            assert np.array_equal(layouts['deltas'](codes[axis]), stored)  # the cache's layout
            assert np.array_equal(undo_outward_deltas(outward_deltas(codes[axis]), peak_index(codes[axis])),
                                  codes[axis])
        teacher = dict(layouts={}, entropy={})
        for label, layout in layouts.items():
            arrays = [layout(c).reshape(n, -1) for c in codes.values()]
            teacher['layouts'][label] = {}
            for codec in codecs:
                size = stored_size_and_speed(arrays, codec)
                teacher['layouts'][label][codec] = dict(bytes_per_row=size['bytes'] / n,
                                                        encode_mb_s=size['encode_mb_s'])
            print(f'{name:8} {label:16} ' + '  '.join(
                f'{codec} {v["bytes_per_row"]:7.1f} ({v["encode_mb_s"]:5.1f})'
                for codec, v in teacher['layouts'][label].items()))
        for c in codes.values():
            instance = np.arange(len(c)) // (len(c) // n)
            for k, v in entropy_bounds(c, instance % 2 == 1).items():
                teacher['entropy'][k] = teacher['entropy'].get(k, 0.0) + v / n
        print(f'{name:8} entropy bounds: ' + ', '.join(f'{k} {v:.1f}' for k, v in teacher['entropy'].items()))
        result['teachers'][name] = teacher
    return result


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py', show_default=True)
@click.option('--cfg-options', multiple=True, help='key=value overrides, as in cli.py')
@click.option('--rows', default=256, show_default=True, help='train instances sampled (one view each)')
@click.option('--device', default='cpu', show_default=True)
@click.option('--student-size', default=None, help='W,H: map into the bins of this student input size')
def main(config_path, cfg_options, rows, device, student_size):
    cfg = load_config(resolve(config_path), parse_cfg_options(cfg_options))
    size = tuple(int(v) for v in student_size.split(',')) if student_size else None
    print(json.dumps(dict(config=str(config_path), **measure(cfg, rows, pick_device(device), size))))


if __name__ == '__main__':
    main()
