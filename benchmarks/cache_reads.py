"""Cache read patterns side by side: one view plane read whole-chunk vs random rows read by fancy indexing,
coded (the configs' encoding) vs lossless rows, blosc-zstd-7 + bit shuffle (default) vs zstd-9 + bit shuffle vs blosc-zstd-5 +
byte shuffle vs blosc-lz4 vs zstd-1 vs no compression, with and
without chunk checksums, in one run on synthetic SimCC rows in a temp dir.

    .venv/bin/python benchmarks/cache_reads.py [--n 20000] [--k 17] [--bins-x 384] [--bins-y 512]
                                               [--window 512] [--tail-blocks 1] [--levels 32] [--rd-lambda 0]
                                               [--chunk-size 512]
                                               [--batch 256] [--repeats 3] [--codecs zstd7-bit,zstd9-bit,zstd5,lz4,zstd1,none]

Figures (instances/s = instance rows of one teacher, all K joints, x and y):
  write_ips        encode + write whole units (what the dump stage pays besides the teacher)
  plane_ips        read_view_plane: every row of one view, whole-chunk reads (training, once per epoch)
  fancy_ips        read_rows on random batches of --batch sorted indices (orthogonal selection)
  reconstruct_ips  reconstruct_rows of random batches from the in-memory plane (per training step)
  bytes_per_row    stored bytes / rows; raw_fp16_bytes_per_row = K * (Bx + By) * 2
  checksum_ratio   read_view_plane with the crc32c chunk checksums (as stored) over the same cache copied
                   without them (same chunks, same compressor), timed in turn in one run (budget: 1.05)
  checksum_share   the checksum alone over the plane's stored chunks / the read without checksums: the
                   same cost without the noise of two whole reads on a busy machine
Reads follow the writes, so they hit a warm page cache: they measure decode cost, not the disk.
Last stdout line: one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cache.manifest import build_manifest  # noqa: E402
from cache.store import ROW_ARRAYS, checksum_matches, create_cache, open_cache, reconstruct_rows  # noqa: E402
from data.instances import InstanceTable  # noqa: E402
from data.skeletons import COCO17  # noqa: E402


def synthetic_instances(n: int) -> InstanceTable:
    zeros = np.zeros(n, np.float32)
    return InstanceTable(dataset=np.array(['coco'] * n), image_path=np.array([f'images/{i:012d}.jpg' for i in range(n)]),
                         image_id=np.arange(n, dtype=np.int64), instance_key=np.arange(n, dtype=np.int64),
                         bbox=np.zeros((n, 4), np.float32), bbox_score=zeros + 1, keypoints=np.zeros((n, COCO17.num_joints, 2), np.float32),
                         keypoints_visible=np.zeros((n, COCO17.num_joints), np.float32),
                         annotated=np.ones((n, COCO17.num_joints), bool),
                         head_size=zeros + np.nan, area=zeros + 1)


def synthetic_rows(rng, n: int, k: int, bins: int) -> np.ndarray:
    """SimCC-like logits: a Gaussian bump (sigma ~ 5 bins) on a noisy floor, peak anywhere."""
    centres = rng.uniform(0, bins - 1, (n, k, 1)).astype(np.float32)
    grid = np.arange(bins, dtype=np.float32)
    bump = np.exp(-(grid - centres) ** 2 / np.float32(2 * 5.0 ** 2))
    return 8 * bump + 0.5 * rng.standard_normal((n, k, bins), dtype=np.float32)


def copy_without_checksums(path: Path, copy: Path) -> None:
    """A copy of the cache whose teacher arrays keep their chunks and compressor but lose the crc32c codec."""
    shutil.copytree(path, copy)
    source = zarr.open_group(path / 'teachers' / 't', mode='r')
    target = zarr.open_group(copy / 'teachers' / 't', mode='r+')
    for name, array in source.arrays():
        target.create_array(name, shape=array.shape, dtype=array.dtype, chunks=array.chunks,
                            fill_value=array.fill_value, overwrite=True,
                            compressors=[c for c in array.compressors if not isinstance(c, Crc32cCodec)]
                            )[...] = array[...]


def checksum_cost(path: Path, repeats: int) -> dict:
    """read_view_plane of view 0 with chunk checksums (as stored) and without them (a copy), timed in
    turn so both see the same machine load, best of `repeats` each; and the checksum alone over the
    plane's stored chunks in memory (what the read adds, without the noise of two whole reads)."""
    copy = path.parent / f'{path.stem}_nocrc.zarr'
    copy_without_checksums(path, copy)
    caches = [('with', open_cache(path)), ('without', open_cache(copy))]
    seconds = {'with': [], 'without': [], 'checksum': []}
    chunks = [f.read_bytes() for name in ROW_ARRAYS for f in (path / 'teachers' / 't' / name / 'c' / '0').rglob('*')
              if f.is_file()]
    for i in range(repeats):
        for which, cache in caches[::1 if i % 2 else -1]:  # each goes first half of the time
            t0 = time.perf_counter()
            cache.read_view_plane('t', 0)
            seconds[which].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        assert all(checksum_matches(chunk) for chunk in chunks)
        seconds['checksum'].append(time.perf_counter() - t0)
    shutil.rmtree(copy)
    best = {k: min(v) for k, v in seconds.items()}
    return dict(plane_checksum_s=best['with'], plane_no_checksum_s=best['without'],
                checksum_ratio=best['with'] / best['without'], checksum_s=best['checksum'],
                checksum_share=best['checksum'] / best['without'])


def measure(path: Path, args, lossless: bool, codec: str) -> dict:
    k, n = args.k, args.n
    spec = dict(union_joints=list(range(k)), bins_x=args.bins_x, bins_y=args.bins_y, bin_map={})
    cache = create_cache(path, build_manifest(benchmark=True), synthetic_instances(n),
                         np.zeros((1, n, 1), np.float32), ['flip'], {'t': spec}, window=args.window,
                         lossless=lossless, chunk_size=args.chunk_size, codec=codec,
                         tail_blocks=args.tail_blocks, levels=args.levels, rd_lambda=args.rd_lambda)
    rng = np.random.default_rng(0)
    # the same rows for every store: generate once per chunk from a per-chunk seed
    write_s = 0.0
    for view, chunk in cache.units():
        rows = cache.chunk_rows(chunk)
        rng = np.random.default_rng(chunk)
        m = rows.stop - rows.start
        x, y = synthetic_rows(rng, m, k, args.bins_x), synthetic_rows(rng, m, k, args.bins_y)
        outside = rng.uniform(0, 0.1, (2, m, k)).astype(np.float32)
        t0 = time.perf_counter()
        cache.write_unit('t', view, chunk, x, y, outside[0], outside[1])
        write_s += time.perf_counter() - t0

    cache = open_cache(path)
    plane_s = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        plane = cache.read_view_plane('t', 0)
        plane_s.append(time.perf_counter() - t0)

    rng = np.random.default_rng(1)
    batches = [np.sort(rng.choice(n, args.batch, replace=False)) for _ in range(args.fancy_batches)]
    t0 = time.perf_counter()
    for idx in batches:
        cache.read_rows('t', 0, idx)
    fancy_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for idx in batches:
        reconstruct_rows(plane, idx)
    recon_s = time.perf_counter() - t0

    rows = cache.written_rows('t')
    return dict(lossless=lossless, codec=codec, window=cache.teacher_spec('t')['window_x'],
                write_ips=n / write_s, plane_ips=n / min(plane_s), plane_s=min(plane_s),
                plane_nbytes_in_memory=int(sum(v.nbytes for v in plane.values() if isinstance(v, np.ndarray))),
                fancy_ips=args.batch * len(batches) / fancy_s,
                reconstruct_ips=args.batch * len(batches) / recon_s,
                bytes_per_row=cache.stored_nbytes('t') / rows,
                raw_fp16_bytes_per_row=k * (args.bins_x + args.bins_y) * 2,
                **checksum_cost(path, args.repeats))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n', type=int, default=20000)
    parser.add_argument('--k', type=int, default=17)
    parser.add_argument('--bins-x', type=int, default=384)
    parser.add_argument('--bins-y', type=int, default=512)
    parser.add_argument('--window', type=int, default=512)
    parser.add_argument('--tail-blocks', type=int, default=1)
    parser.add_argument('--levels', type=int, default=32)
    parser.add_argument('--rd-lambda', type=float, default=0.0)
    parser.add_argument('--chunk-size', type=int, default=512)
    parser.add_argument('--batch', type=int, default=256)
    parser.add_argument('--fancy-batches', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--codecs', default='zstd7-bit,zstd9-bit,zstd5,lz4,zstd1,none')
    args = parser.parse_args(argv)

    results = {}
    root = Path(tempfile.mkdtemp(prefix='cache_reads_'))
    try:
        for lossless in (False, True):
            for codec in args.codecs.split(','):
                name = f'{"lossless" if lossless else f"w{args.window}"}_{codec}'
                results[name] = measure(root / f'{name}.zarr', args, lossless, codec)
                shutil.rmtree(root / f'{name}.zarr')
                r = results[name]
                print(f'{name:16s} plane {r["plane_ips"]:10.0f} inst/s ({r["plane_s"]:.2f} s)  '
                      f'fancy {r["fancy_ips"]:8.0f} inst/s  reconstruct {r["reconstruct_ips"]:8.0f} inst/s  '
                      f'write {r["write_ips"]:7.0f} inst/s  {r["bytes_per_row"]:8.0f} B/row '
                      f'(raw fp16 {r["raw_fp16_bytes_per_row"]})  checksums x{r["checksum_ratio"]:.3f} '
                      f'({r["plane_checksum_s"]:.3f} vs {r["plane_no_checksum_s"]:.3f} s; '
                      f'crc alone {r["checksum_share"]:.1%})', flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    first_codec = args.codecs.split(',')[0]
    windowed, lossless = results[f'w{args.window}_{first_codec}'], results[f'lossless_{first_codec}']
    summary = dict(n=args.n, k=args.k, bins_x=args.bins_x, bins_y=args.bins_y, window=args.window,
                   chunk_size=args.chunk_size, batch=args.batch, results=results,
                   ratios={'plane_over_fancy_windowed': windowed['plane_ips'] / windowed['fancy_ips'],
                           'plane_over_fancy_lossless': lossless['plane_ips'] / lossless['fancy_ips'],
                           'windowed_over_lossless_plane': windowed['plane_ips'] / lossless['plane_ips'],
                           'lossless_over_windowed_bytes': lossless['bytes_per_row'] / windowed['bytes_per_row'],
                           'checksum_windowed': windowed['checksum_ratio'],
                           'checksum_lossless': lossless['checksum_ratio'],
                           'checksum_share_windowed': windowed['checksum_share'],
                           'checksum_share_lossless': lossless['checksum_share']})
    print(json.dumps(summary))
    return summary


if __name__ == '__main__':
    main()
