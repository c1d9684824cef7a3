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
  context-sorted  the cache's deltas grouped by the context a decoder going left to right knows (the
                  previous code, whether a top code came before, the last delta; bin by bin, rows in
                  order within a context), plus the count of each context: stock zstd then codes each
                  context's deltas nearly apart. Decoding must redo the contexts bin by bin
                  (undo_context_sort), so its time is given against reconstructing the same rows
each through the cache's codecs (cache.store.CODECS; the default first), bytes per
instance·view·teacher row (all joints, x and y; the codes only, without the tail and the seen range)
and the codec's encode speed in MB/s of raw bytes (one core).
Entropy bounds, bytes per row: what an ideal entropy coder stores for the deltas with one static table
per context value (fitted on the other half of the sampled instances, the tables themselves free),
alone (order 0) and given a context a decoder going left to right knows: the previous code, whether
the row's top code came before (which flank of the peak the bin is on), the last two deltas; or given
the distance to the peak and the flank (the peak's position must then be stored too: 'peak positions').
--stock-coders adds general-purpose coders that model contexts themselves, each checked to round-trip:
LZMA (the previous byte's high bits as literal context) and bzip2 (block sorting) from the standard
library; JPEG-LS and JPEG XL lossless (rows x bins as an 8-bit image) when imagecodecs is installed;
PPMd (order-2 context model) when pyppmd is installed; each on the config's cache chunks (cache.chunk_size
instances at a time, as a cache codec would see them). Codes are given flank-mapped for the byte coders
(code + 64 once a top code came before, so the previous byte carries the flank) and as they are for the
image coders.
Last stdout line: one JSON object.

    python benchmarks/cache_coding.py [--config pipeline/configs/demo_synthetic.py] [--rows 256]
        [--student-size 192,256] [--stock-coders]
"""
from __future__ import annotations

import bz2
import json
import lzma
import sys
import time
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cache_window import compressed_bytes, sample_teacher_rows  # noqa: E402
from cache.store import CODECS, DEFAULT_CODEC  # noqa: E402
from cache.window import (encode_window, reconstruct, undo_zigzag_deltas, unzigzag_bytes, zigzag_bytes,  # noqa: E402
                          zigzag_deltas)
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


def before(a: np.ndarray, k: int = 1) -> np.ndarray:
    """Each bin's value k bins to its left along the last axis (0 past the row's start)."""
    return np.concatenate([np.zeros_like(a[..., :k]), a[..., :-k]], axis=-1)


def top_passed(codes: np.ndarray, levels: int) -> np.ndarray:
    """Per bin: a top code (levels) came before it in its row (which flank of the peak it is on, as a
    decoder going left to right knows it)."""
    return np.maximum.accumulate(before(codes) == levels, axis=-1)


# Contexts of the context-sorted layout: the previous code (0-255), whether a top code came before, the
# last delta clipped to [-2, 2] (the row's local slope).
LAST_DELTA_CLIP = 2
N_CONTEXTS = 256 * 2 * (2 * LAST_DELTA_CLIP + 1)


def coding_context(prev: np.ndarray, top_seen: np.ndarray, last_delta: np.ndarray) -> np.ndarray:
    """A bin's context from what precedes it in its row (uint16, < N_CONTEXTS)."""
    ctx = (prev.astype(np.int32) * 2 + top_seen) * (2 * LAST_DELTA_CLIP + 1) \
        + np.clip(last_delta, -LAST_DELTA_CLIP, LAST_DELTA_CLIP) + LAST_DELTA_CLIP
    return ctx.astype(np.uint16)


def context_sort(stored: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """The cache's zigzag deltas (rows x bins, uint8) -> (the same bytes grouped by context: bin by bin,
    rows in order within a context, flat; the count of each context, (N_CONTEXTS,) uint32)."""
    codes = undo_zigzag_deltas(stored).astype(np.int16)
    ctx = coding_context(before(codes), top_passed(codes, levels), before(unzigzag_bytes(stored)))
    order = np.argsort(ctx.T.ravel(), kind='stable')
    return stored.T.ravel()[order], np.bincount(ctx.ravel(), minlength=N_CONTEXTS).astype(np.uint32)


def undo_context_sort(grouped: np.ndarray, counts: np.ndarray, shape: tuple, levels: int) -> np.ndarray:
    """Inverse of context_sort: bin by bin, every row's context gives where its byte lies."""
    m, w = shape
    grouped = np.asarray(grouped).ravel()
    counts = np.asarray(counts, dtype=np.int64)
    next_of = np.concatenate([[0], np.cumsum(counts)[:-1]])  # where each context's next byte is
    out = np.empty((w, m), dtype=np.uint8)
    prev, last = np.zeros(m, np.int16), np.zeros(m, np.int16)
    top_seen = np.zeros(m, dtype=bool)
    rows = np.arange(m)
    for i in range(w):
        top_seen |= prev == levels
        ctx = coding_context(prev, top_seen, last)
        order = np.argsort(ctx, kind='stable')  # rows grouped by context, in order within one
        per = np.bincount(ctx, minlength=N_CONTEXTS)
        first = np.cumsum(per) - per  # each context's first place in `order`
        z = np.empty(m, dtype=np.uint8)
        z[order] = grouped[(next_of - first)[ctx[order]] + rows]
        out[i] = z
        next_of += per
        last = unzigzag_bytes(z)
        prev = (prev + last) & 0xFF
    return out.T


def flank_mapped(codes: np.ndarray, levels: int) -> np.ndarray:
    """Codes as bytes, + 64 once a top code came before (levels < 64), so each byte also says the flank."""
    return (codes + 64 * top_passed(codes, levels)).astype(np.uint8)


def stock_coders() -> dict:
    """name -> (encode, decode, input) of the general-purpose context-modelling coders importable here;
    input 'flank' (flank_mapped bytes, flat) or 'codes' (rows x bins image)."""
    lzma_filters = [dict(id=lzma.FILTER_LZMA1, preset=6, lc=4, lp=0, pb=0)]  # liblzma allows lc <= 4
    coders = {
        'LZMA, lc 4': (lambda a: lzma.compress(a.tobytes(), format=lzma.FORMAT_RAW, filters=lzma_filters),
                       lambda b, n: np.frombuffer(lzma.decompress(b, format=lzma.FORMAT_RAW, filters=lzma_filters),
                                                  np.uint8), 'flank'),
        'bzip2 -9': (lambda a: bz2.compress(a.tobytes(), 9), lambda b, n: np.frombuffer(bz2.decompress(b), np.uint8),
                     'flank')}
    try:
        import imagecodecs
        coders['JPEG-LS'] = (imagecodecs.jpegls_encode, lambda b, n: imagecodecs.jpegls_decode(b), 'codes')
        for effort in (3, 7):
            coders[f'JPEG XL lossless, effort {effort}'] = (
                lambda a, e=effort: imagecodecs.jpegxl_encode(a, lossless=True, effort=e),
                lambda b, n: imagecodecs.jpegxl_decode(b), 'codes')
    except ImportError:
        print('imagecodecs is not installed: no JPEG-LS / JPEG XL (pip install imagecodecs)')
    try:
        import pyppmd

        def ppmd_encode(a):
            coder = pyppmd.Ppmd7Encoder(2, 16 << 20)
            return coder.encode(a.tobytes()) + coder.flush(endmark=False)
        coders['PPMd, order 2'] = (ppmd_encode, lambda b, n: np.frombuffer(
            pyppmd.Ppmd7Decoder(2, 16 << 20).decode(b, n), np.uint8), 'flank')
    except ImportError:
        print('pyppmd is not installed: no PPMd (pip install pyppmd)')
    return coders


def stock_coder_bytes(codes: dict, levels: int, n: int, chunk: int) -> dict:
    """Bytes per row, encode and decode MB/s of each stock coder over both axes' codes (rows of n
    instances, instance by instance), coded as the cache would: `chunk` instances at a time. A coder
    whose output does not decode to its input fails its round trip (its bytes are then not a result);
    `failures` says where (axis, first instance, bytes given back, first wrong byte)."""
    out = {}
    for name, (encode, decode, given) in stock_coders().items():
        size, t_enc, t_dec, failures = 0, 0.0, 0.0, []
        for axis, c in codes.items():
            per_instance = len(c) // n
            for first in range(0, n, chunk):
                part = c[first * per_instance:(first + chunk) * per_instance]
                a = flank_mapped(part, levels).ravel() if given == 'flank' else part.astype(np.uint8)
                t = time.perf_counter()
                blob = encode(a)
                t_enc += time.perf_counter() - t
                t = time.perf_counter()
                back = np.asarray(decode(blob, a.nbytes)).ravel()
                t_dec += time.perf_counter() - t
                if not np.array_equal(back, a.ravel()):
                    wrong = np.flatnonzero(back[:a.size] != a.ravel()[:back.size])
                    failures.append(dict(axis=axis, first_instance=first, bytes=a.nbytes, decoded=back.size,
                                         first_wrong=int(wrong[0]) if wrong.size else min(back.size, a.size)))
                size += len(blob)
        raw = sum(c.size for c in codes.values())
        out[name] = dict(bytes_per_row=size / n, encode_mb_s=raw / t_enc / 1e6, decode_mb_s=raw / t_dec / 1e6,
                         round_trip=not failures, failures=failures)
    return out


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


def measure(cfg, rows: int, device, student_size: tuple | None = None, stock: bool = False) -> dict:
    """Every layout x codec and every entropy estimate of each teacher's codes on `rows` sampled train
    instances (printing a table on the way); with `stock`, the stock coders too."""
    n, bins, sampled = sample_teacher_rows(cfg, rows, device, student_size)
    levels = int(cfg.cache.levels)
    codecs = [DEFAULT_CODEC] + sorted(c for c in CODECS if c != DEFAULT_CODEC)
    result = dict(rows=n, bins=list(bins), levels=levels, codecs=codecs, teachers={})
    print(f'{n} rows, bins {bins[0]} x {bins[1]}, L = {levels}; bytes per row (MB/s of raw bytes encoded)')
    # each layout -> the arrays it stores for one axis (its codes, rows x bins, and their grouping)
    layouts = {'deltas': lambda a: [zigzag_deltas(codes[a]).reshape(n, -1)],
               'outward deltas': lambda a: [zigzag_bytes(outward_deltas(codes[a])).reshape(n, -1)],
               'codes': lambda a: [codes[a].astype(np.uint8).reshape(n, -1)],
               '2nd deltas': lambda a: [zigzag_bytes(second_deltas(codes[a])).reshape(n, -1)],
               'context-sorted': lambda a: [grouped[a][0].reshape(n, -1), grouped[a][1]]}
    for name, (sx, sy, _, _) in sampled.items():
        codes, grouped = {}, {}
        timing = dict.fromkeys(['encode_window', 'context_sort', 'reconstruct', 'undo_context_sort'], 0.0)
        for axis, r in (('x', sx), ('y', sy)):
            w = r.shape[-1]
            t = time.perf_counter()
            encoded = encode_window(r, w, 1, levels, 0.0)
            timing['encode_window'] += time.perf_counter() - t
            stored = encoded[1].reshape(-1, w)
            codes[axis] = undo_zigzag_deltas(stored).astype(np.int64)
            assert np.array_equal(zigzag_deltas(codes[axis]), stored)  # the cache's layout
            assert np.array_equal(undo_outward_deltas(outward_deltas(codes[axis]), peak_index(codes[axis])),
                                  codes[axis])
            t = time.perf_counter()
            grouped[axis] = context_sort(stored, levels)
            timing['context_sort'] += time.perf_counter() - t
            t = time.perf_counter()
            reconstruct(*encoded, w, levels)
            timing['reconstruct'] += time.perf_counter() - t
            t = time.perf_counter()
            assert np.array_equal(undo_context_sort(*grouped[axis], stored.shape, levels), stored)
            timing['undo_context_sort'] += time.perf_counter() - t
        teacher = dict(layouts={}, entropy={}, context_sort_seconds=timing)
        print(f'{name:8} context sort: encode {timing["context_sort"]:.3f} s (encode_window '
              f'{timing["encode_window"]:.3f} s), decode {timing["undo_context_sort"]:.3f} s (reconstruct '
              f'{timing["reconstruct"]:.3f} s) for {n} rows')
        for label, layout in layouts.items():
            arrays = [array for axis in codes for array in layout(axis)]
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
        if stock:
            teacher['stock'] = stock_coder_bytes(codes, levels, n, int(cfg.cache.chunk_size))
            print(f'{name:8} stock coders: ' + ', '.join(
                f'{k} {v["bytes_per_row"]:.1f} ({v["encode_mb_s"]:.1f} / {v["decode_mb_s"]:.1f} MB/s'
                + ('' if v['round_trip'] else f', FAILS its round trip: {v["failures"]}') + ')'
                for k, v in teacher['stock'].items()))
        result['teachers'][name] = teacher
    return result


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py', show_default=True)
@click.option('--cfg-options', multiple=True, help='key=value overrides, as in cli.py')
@click.option('--rows', default=256, show_default=True, help='train instances sampled (one view each)')
@click.option('--device', default='cpu', show_default=True)
@click.option('--student-size', default=None, help='W,H: map into the bins of this student input size')
@click.option('--stock-coders', 'stock', is_flag=True,
              help='also LZMA, bzip2, and JPEG-LS / JPEG XL / PPMd where installed')
def main(config_path, cfg_options, rows, device, student_size, stock):
    cfg = load_config(resolve(config_path), parse_cfg_options(cfg_options))
    size = tuple(int(v) for v in student_size.split(',')) if student_size else None
    print(json.dumps(dict(config=str(config_path), **measure(cfg, rows, pick_device(device), size, stock))))


if __name__ == '__main__':
    main()
