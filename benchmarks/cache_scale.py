"""Full-size cache rehearsal: a train cache the size of COCO + MPII (172,059 instances: 149,813 COCO
person instances with keypoints + 22,246 MPII, x 8 views x 2 teachers, full-scale bins 384 x 512),
written with the configs' encoding (coded rows) from synthetic rows: no teacher runs.

The writer and the reader are separate processes (their peak RSS is each one's own). The writer
creates the cache (cache.store.create_cache) and writes every unit (Cache.write_unit: encode + write);
the reader reads view planes whole-chunk (Cache.read_view_plane, what training does once per view
per epoch) and reconstructs random batches (reconstruct_rows, per training step). Figures:
  write_mb_s        stored MB / the writer's time in write_unit (rows generated outside the timing)
  plane_read_mb_s   stored MB of the planes read / read time (a warm page cache: the decode, not the disk)
  epoch_read_s      one view plane per teacher at full size / the plane read rate: the cache's part of
                    an epoch (training reads one view of every instance per epoch)
  reconstruct_rows_s  instance rows of one teacher reconstructed per second from an in-memory plane
  peak_rss_mb       writer and reader (ru_maxrss of each process)
  files             files in the store: at most one per unit and teacher array (units x arrays; a chunk
                    holding only the fill value, e.g. the whole-row windows' starts, is never written),
                    plus metadata; the full-size count scales the measured unit files by the chunks
Where the full size takes too long on the machine (the encode alone runs at ~2-3k instance rows/s
per core with rounded codes, a few hundred with the rate-distortion search), --fraction runs that share
of the instances (the same chunk size and views) and the full-size figures are extrapolated linearly
(bytes, times, the plane's memory) and stated as such.

    python benchmarks/cache_scale.py [--fraction 0.0625] [--views 8] [--chunk-size 1024] [--root DIR]

Last stdout line: one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cache_reads import synthetic_instances  # noqa: E402
from cache.manifest import build_manifest  # noqa: E402
from cache.store import UNIT_ARRAYS, create_cache, open_cache, reconstruct_rows  # noqa: E402
from pipeline.config import load_config, resolve  # noqa: E402

FULL_INSTANCES = 149_813 + 22_246  # COCO train2017 person instances with keypoints + MPII train
TEACHERS = {'coco': 17, 'mpii': 16}  # joints per teacher
FULL_CONFIG = 'pipeline/configs/coco_mpii_rtmpose-s.py'


def demo_like_rows(rng, n: int, k: int, bins: int) -> np.ndarray:
    """Rows shaped like the shipped teachers' mapped into full-scale bins: a broad bump (log-probability
    range ~0.8 nats over the row, as theirs), a random walk and bin-level noise (first differences of
    the log-probabilities with std ~0.011 against their 0.014). Coded, they take ~2.6 kB per row
    against ~2.0 kB for the real rows (cache_window.py --student-size 192,256): the rehearsal's bytes
    are on the safe side."""
    centres = rng.uniform(0, bins - 1, (n, k, 1)).astype(np.float32)
    grid = np.arange(bins, dtype=np.float32)
    bump = np.float32(0.7) * np.exp(-(grid - centres) ** 2 / np.float32(2 * (bins / 5) ** 2))
    walk = np.cumsum(rng.standard_normal((n, k, bins), dtype=np.float32), -1) * np.float32(0.008)
    walk -= np.linspace(0, 1, bins, dtype=np.float32) * walk[..., -1:]
    return bump + walk + np.float32(0.005) * rng.standard_normal((n, k, bins), dtype=np.float32)


def cache_settings() -> dict:
    cfg = load_config(resolve(FULL_CONFIG))
    return dict(window=int(cfg.cache.window), tail_blocks=int(cfg.cache.tail_blocks), levels=int(cfg.cache.levels),
                rd_lambda=float(cfg.cache.rd_lambda))


def write(path: Path, n: int, views: int, chunk_size: int) -> dict:
    settings = cache_settings()
    specs = {name: dict(union_joints=list(range(k)), bins_x=384, bins_y=512, bin_map={}) for name, k in TEACHERS.items()}
    t0 = time.perf_counter()
    cache = create_cache(path, build_manifest(benchmark=True), synthetic_instances(n),
                         np.zeros((views, n, 1), np.float32), ['flip'], specs, window=settings['window'],
                         tail_blocks=settings['tail_blocks'], levels=settings['levels'],
                         rd_lambda=settings['rd_lambda'], lossless=False,
                         chunk_size=chunk_size)
    create_s = time.perf_counter() - t0
    write_s = 0.0
    for view, chunk in cache.units():
        rows = cache.chunk_rows(chunk)
        m = rows.stop - rows.start
        for name, k in TEACHERS.items():
            rng = np.random.default_rng([view, chunk, k])
            x, y = demo_like_rows(rng, m, k, 384), demo_like_rows(rng, m, k, 512)
            outside = rng.uniform(0, 0.1, (2, m, k)).astype(np.float32)
            t0 = time.perf_counter()
            cache.write_unit(name, view, chunk, x, y, outside[0], outside[1])
            write_s += time.perf_counter() - t0
    stored = {name: cache.stored_nbytes(name) for name in TEACHERS}
    return dict(create_s=create_s, write_s=write_s, stored_bytes=stored, settings=settings,
                rows={name: cache.written_rows(name) for name in TEACHERS})


def read(path: Path, views_read: int, batch: int, batches: int) -> dict:
    cache = open_cache(path)
    plane_s, plane_bytes, plane_memory = 0.0, 0, 0
    for name in TEACHERS:
        per_view = cache.stored_nbytes(name) / cache.n_views
        for view in range(min(views_read, cache.n_views)):
            t0 = time.perf_counter()
            plane = cache.read_view_plane(name, view)
            plane_s += time.perf_counter() - t0
            plane_bytes += per_view
        plane_memory += sum(v.nbytes for v in plane.values() if isinstance(v, np.ndarray))
    rng = np.random.default_rng(0)
    idx = [np.sort(rng.choice(cache.n_instances, min(batch, cache.n_instances), replace=False)) for _ in range(batches)]
    t0 = time.perf_counter()
    for i in idx:
        reconstruct_rows(plane, i)
    recon_s = time.perf_counter() - t0
    return dict(plane_s=plane_s, plane_bytes=plane_bytes, planes_in_memory_bytes=plane_memory,
                reconstruct_rows_s=sum(len(i) for i in idx) / recon_s)


def run_role(argv: list[str]) -> tuple[dict, float]:
    """Run this script in a child process with `argv`; (its JSON result, its peak RSS in MB)."""
    proc = subprocess.Popen([sys.executable, __file__, *argv], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f'{argv[0]} failed (exit {os.waitstatus_to_exitcode(status)})')
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024  # Linux: kB


def count_files(path: Path) -> tuple[int, int]:
    """(every file of the store, the teacher arrays' chunk files)."""
    total = sum(len(files) for _, _, files in os.walk(path))
    chunks = sum(len([f for f in files if f != 'zarr.json']) for _, _, files in os.walk(path / 'teachers'))
    return total, chunks


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--fraction', type=float, default=1 / 16)
    parser.add_argument('--instances', type=int, default=FULL_INSTANCES, help='the full size')
    parser.add_argument('--views', type=int, default=8)
    parser.add_argument('--chunk-size', type=int, default=1024)
    parser.add_argument('--views-read', type=int, default=2, help='view planes read per teacher')
    parser.add_argument('--batch', type=int, default=256)
    parser.add_argument('--batches', type=int, default=20)
    parser.add_argument('--root', default=None, help='where the cache is written (default: a temp dir)')
    parser.add_argument('--role', choices=('write', 'read'), default=None, help=argparse.SUPPRESS)
    parser.add_argument('--path', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n = max(1, round(args.instances * args.fraction))
    if args.role == 'write':
        print(json.dumps(write(Path(args.path), n, args.views, args.chunk_size)))
        return {}
    if args.role == 'read':
        print(json.dumps(read(Path(args.path), args.views_read, args.batch, args.batches)))
        return {}

    with tempfile.TemporaryDirectory(dir=args.root, prefix='cache_scale_') as tmp:
        path = Path(tmp) / 'train.zarr'
        common = ['--fraction', str(args.fraction), '--instances', str(args.instances), '--path', str(path)]
        written, writer_rss = run_role(['--role', 'write', '--views', str(args.views),
                                        '--chunk-size', str(args.chunk_size), *common])
        files, unit_files = count_files(path)
        disk_bytes = sum(f.stat().st_size for f in path.rglob('*') if f.is_file())
        got, reader_rss = run_role(['--role', 'read', '--views-read', str(args.views_read), '--batch', str(args.batch),
                                    '--batches', str(args.batches), *common])
    stored = sum(written['stored_bytes'].values())
    scale = args.instances / n
    n_chunks = math.ceil(n / args.chunk_size)
    full_chunks = math.ceil(args.instances / args.chunk_size)
    per_unit = len(TEACHERS) * len(UNIT_ARRAYS)  # one chunk file per teacher array per unit
    plane_mb_s = got['plane_bytes'] / 1e6 / got['plane_s']
    full_files = round(unit_files * full_chunks / n_chunks) + files - unit_files
    rows = sum(written['rows'].values())
    result = dict(
        fraction=args.fraction, instances=n, full_instances=args.instances, views=args.views,
        chunk_size=args.chunk_size, teachers=TEACHERS, bins=[384, 512], encoding=written['settings'],
        bytes_per_row=stored / rows, stored_gb=stored / 1e9, disk_gb=disk_bytes / 1e9,
        write_s=written['write_s'], write_mb_s=stored / 1e6 / written['write_s'],
        write_rows_s=rows / written['write_s'], plane_read_mb_s=plane_mb_s,
        reconstruct_rows_s=got['reconstruct_rows_s'],
        writer_peak_rss_mb=writer_rss, reader_peak_rss_mb=reader_rss,
        planes_in_memory_mb=got['planes_in_memory_bytes'] / 1e6,
        files=files, unit_files=unit_files, unit_files_at_most=n_chunks * args.views * per_unit,
        full=dict(stored_gb=stored * scale / 1e9, disk_gb=disk_bytes * scale / 1e9,
                  write_hours_one_process=written['write_s'] * scale / 3600,
                  epoch_read_s=stored * scale / args.views / 1e6 / plane_mb_s,
                  planes_in_memory_gb=got['planes_in_memory_bytes'] * scale / 1e9,
                  files=full_files, sharding_needed=full_files >= 100_000),
    )
    for key, value in result.items():
        print(f'{key:22} {value}')
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
