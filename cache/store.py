"""The teacher-target cache: one Zarr v3 group per (config, split), written unit by unit, read plane by plane.

On-disk layout (layout 'pose-distill-cache', version 4)
-------------------------------------------------------
<cache.root>/<split>.zarr/                      Zarr v3 group
  attrs: layout, layout_version, complete=True, manifest {...}, n_views V, n_instances N,
         chunk_size C, n_chunks ceil(N / C), view_fields [...], teacher_names [...]
  instances/<column>        one array per InstanceTable column, (N, ...); strings as Zarr v3
                            variable-length UTF-8 (dtype str), numbers in their table dtype
  views                     (V, N, P) float32, chunks (1, C, P): the view records replayed by dump and train
  teachers/<name>/          attrs: union_joints [K], bins_x Bx, bins_y By, bin_map {...},
                            window_x wx, window_y wy, tail_blocks_x bx, tail_blocks_y by, levels L,
                            rd_lambda (how the codes were chosen; the decoder does not need it),
                            lossless (wx = Bx, wy = By, bx = by = 1, L = 0 when lossless; a configured
                            window wider than an axis's bins is that axis's whole row), datasets: the datasets
                            whose rows the teacher is run on (null: all; a val cache runs a teacher
                            only where the report scores it): units with none of their rows are
                            never written and not pending, and their rows read as zeros
    x_start, y_start        (V, N, K) int16     first bin of the window
    x_values, y_values      (V, N, K, wx|wy) uint8 (L > 0): zigzag deltas of the window's codes, or
                            float16 (L = 0): log-probabilities inside the window (cache/window.py)
    x_tail, y_tail          (V, N, K, bx|by) float16  per block: log mean probability of its seen bins
                                                outside the window (and, coded, of its code-0 bins;
                                                relative to the peak)
    x_seen, y_seen          (V, N, K, 2) int16  [lo, hi) of the student bins the teacher's crop reaches
    x_outside, y_outside    (V, N, K) float16   teacher probability mass outside the student crop
    unit_seconds            (V, n_chunks) float32, chunks (1, 1): the teacher's measured forward time
                            for the unit, written with it (totals are sums over done units, so a resumed
                            or sharded dump adds up to what one uninterrupted run would report)
    done                    (V, n_chunks) bool, chunks (1, 1)
  Every teacher array is chunked (1, C, K[, w]): a unit = (view, instance chunk) is exactly one
  chunk of each array, so a unit is written with whole-chunk writes and a view plane is read with
  whole-chunk reads (training loads one view for all instances per epoch). Compression: blosc-zstd
  level 7 with bit shuffle (CODECS below; benchmarks/cache_window.py measures the bytes,
  benchmarks/cache_reads.py the read speed against zstd-5 with byte shuffle, lz4, zstd-1 and none).
  Checksums (new in version 3): every chunk of every array ends in the CRC-32C of its stored bytes
  (Zarr v3's crc32c codec, after the compressor). Every read checks it: a chunk that fails raises
  CacheChunkError naming the cache, the array and the chunk; nothing decodes a damaged chunk. A cache
  of an older layout has no checksums and is refused (dump it again with --no-resume).
  Coded rows (new in version 4): uint8 codes of the sharpened row instead of fp16 log-probabilities
  (cache/window.py; ~1.6 kB instead of ~3.8 kB per row at the same fidelity). A version 3 cache is
  refused with the command that rebuilds it.

Writing and resuming
--------------------
create_cache builds the whole group (metadata, instances, views, empty teacher arrays) under a
hidden temporary name beside the target and renames it into place; `complete` is set last, so a
store at the target path is never half-created. write_unit writes the unit's chunks first and
then its done marker. The marker is its own one-element chunk (one file per unit), so processes
writing disjoint units never touch the same object, and a unit interrupted before its marker is
written stays pending and is redone on resume. Zarr's LocalStore writes each chunk file to a
temporary name and renames it, so a killed writer never leaves a torn chunk behind.
Before creating, create_cache refuses a cache the disk cannot hold (estimate_nbytes: an upper bound).

Object storage
--------------
cache.root may be an fsspec URL (s3://bucket/prefix, gs://..., with the filesystem's package
installed: s3fs for s3://, an optional dependency). The store is then opened through Zarr's
FsspecStore and every path operation above goes through universal_pathlib's UPath (cache_location);
credentials and the endpoint come from the filesystem's usual settings (for S3: the AWS_* environment
variables or ~/.aws, AWS_ENDPOINT_URL for a non-AWS endpoint). Object stores have no rename and no
free-space figure: create_cache writes the group in place and sets `complete` last (a store without
it is refused as before), and the space check is skipped. Every chunk object carries its checksum
as on disk; verify reads each one (one GET per chunk).

Verifying and repairing
-----------------------
Cache.verify checks the stored checksums of every chunk of the shared arrays and of every done unit
without decoding them (one pass over the files). A failing unit is repaired by mark_pending: its
marker is cleared and the dump's resume path recomputes it (whole-chunk writes never read the damaged
chunk). A damaged instances/views chunk cannot be recomputed unit by unit: the cache is rebuilt.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path

import google_crc32c
import numpy as np
import zarr
from upath import UPath
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from cache.window import check_coding, encode_window, reconstruct
from data.instances import InstanceTable

LAYOUT = 'pose-distill-cache'
LAYOUT_VERSION = 4
UNCHECKED_LAYOUT_VERSIONS = (1, 2)  # before chunk checksums
AXES = ('x', 'y')
ROW_FIELDS = ('start', 'values', 'tail', 'seen', 'outside')  # per axis: what one cache row is made of
ROW_ARRAYS = tuple(f'{axis}_{name}' for axis in AXES for name in ROW_FIELDS)
UNIT_ARRAYS = ROW_ARRAYS + ('unit_seconds', 'done')  # a unit is one chunk of each
# The ValueError zarr's Crc32cCodec raises when a chunk's bytes do not match their stored checksum.
CHECKSUM_MISMATCH = 'Stored and computed checksum do not match'
# A chunk file takes whole filesystem blocks; the space estimate charges one block per file on top
# of its raw bytes (which also covers the compressor's header and the 4-byte checksum).
FILE_BLOCK_BYTES = 4096

# Codecs of the teacher arrays. blosc-zstd level 7 with bit shuffle: the coded rows are small deltas,
# whose high bit planes are nearly all zero, and bit shuffle lets zstd see that (~15% fewer bytes than
# zstd-5 with byte shuffle, benchmarks/cache_window.py). Level 9 saves another 2-4% but compresses
# ~10x slower (2 MB/s of raw codes: the dump's writer could not keep up with a GPU teacher); a view
# plane decodes in a fraction of a training epoch either way (benchmarks/cache_reads.py).
CODECS = {
    'zstd7-bit': lambda: BloscCodec(cname='zstd', clevel=7, shuffle='bitshuffle'),
    'zstd9-bit': lambda: BloscCodec(cname='zstd', clevel=9, shuffle='bitshuffle'),
    'zstd5': lambda: BloscCodec(cname='zstd', clevel=5, shuffle='shuffle'),
    'zstd1': lambda: ZstdCodec(level=1),
    'lz4': lambda: BloscCodec(cname='lz4', clevel=5, shuffle='shuffle'),
    'none': lambda: None,
}
DEFAULT_CODEC = 'zstd7-bit'


class CacheError(RuntimeError):
    """The cache at a path is missing, incomplete, of another layout, or not ready for a read."""


class CacheChunkError(CacheError):
    """A chunk's bytes do not match their stored checksum (bit rot, a bad copy, a torn disk write)."""

    def __init__(self, cache: Path, array: str, key: str):
        # a unit's chunks are recomputed by the dump's repair; the shared arrays only by a new cache
        remedy = ('run dump-teachers again to recompute it' if array.startswith('teachers/')
                  else 'run dump-teachers --no-resume to rebuild the cache')
        super().__init__(f'{cache}/{array}: chunk {key} fails its checksum; {remedy}')
        self.cache, self.array, self.key = cache, array, key


def cache_location(path) -> Path | UPath:
    """A cache's place: a local Path, or a UPath for an fsspec URL (s3://bucket/prefix/train.zarr)."""
    if isinstance(path, UPath) or '://' in str(path):
        return UPath(path)
    return Path(path)


def is_remote(path) -> bool:
    """The location is an fsspec URL, not a local path."""
    return isinstance(cache_location(path), UPath)


def _open_group(path, mode: str):
    if is_remote(path):
        return zarr.open_group(str(path), mode=mode, zarr_format=3, storage_options=dict(path.storage_options) or None)
    return zarr.open_group(path, mode=mode, zarr_format=3)


def _remove(path) -> None:
    if is_remote(path):
        path.fs.rm(path.path, recursive=True)
    else:
        shutil.rmtree(path)


def compressors_of(codec: str) -> list:
    """The codec's compressor followed by the crc32c checksum of the compressed bytes (checked first on
    read, so a damaged chunk is never handed to the decompressor)."""
    if codec not in CODECS:
        raise ValueError(f'unknown cache codec {codec!r}; choose one of {sorted(CODECS)}')
    made = CODECS[codec]()
    return ([] if made is None else [made]) + [Crc32cCodec()]


def checksum_matches(data: bytes) -> bool:
    """A stored chunk's bytes match their checksum: Zarr v3's crc32c codec appends the CRC-32C of the
    bytes before it as a little-endian uint32. Checked without decoding the chunk."""
    # a read-only numpy view: the C checksum takes it without copying the chunk (a bytes slice would copy)
    body = np.frombuffer(data, dtype=np.uint8)[:-4]
    return len(data) >= 4 and google_crc32c.value(body) == int.from_bytes(data[-4:], 'little')


def chunk_intact(file: Path | UPath) -> bool:
    """The chunk file's bytes match their checksum. A chunk never written has no file and reads as the
    fill value: intact."""
    try:
        return checksum_matches(file.read_bytes())
    except FileNotFoundError:
        return True


def estimate_nbytes(n_instances: int, n_views: int, specs: dict, chunk_size: int, shared_nbytes: int) -> int:
    """An upper bound of a cache's bytes on disk: every teacher row uncompressed (zstd stores ~0.2 of
    that for coded rows, benchmarks/cache_window.py, but real rows may compress worse, and a dump that
    runs out of disk half way is what this check prevents; blosc keeps an incompressible block as it
    is), one filesystem block per chunk file on top, and the shared arrays (instances, views) about as
    they are in memory (fixed-width strings there take 4 bytes a character, more than their UTF-8)."""
    n_chunks = math.ceil(n_instances / chunk_size)
    total = shared_nbytes
    for spec in specs.values():
        k = spec['num_joints']
        # per axis: start int16, values uint8 (coded) or fp16 x w, tail fp16 x b, seen int16 x 2, outside fp16
        value_bytes = 1 if spec['levels'] else 2
        row = sum(k * (2 + value_bytes * spec[f'window_{a}'] + 2 * spec[f'tail_blocks_{a}'] + 4 + 2) for a in AXES)
        # the block per file also holds the unit's marker and forward time (a few bytes each)
        total += n_views * (n_instances * row + n_chunks * len(UNIT_ARRAYS) * FILE_BLOCK_BYTES)
    return total


def _size(nbytes: int) -> str:
    return f'{nbytes / 1e9:.2f} GB ({nbytes:,} bytes)'


def require_space(path: Path, nbytes: int) -> None:
    """Refuse, before anything is written, a cache of `nbytes` the disk under `path` cannot hold. A cache
    being replaced at `path` counts as free: it is removed before any unit is written."""
    where = path.parent
    while not where.exists():  # the cache root may not exist yet
        where = where.parent
    free = shutil.disk_usage(where).free
    if path.exists():
        free += sum(f.stat().st_size for f in path.rglob('*') if f.is_file())
    if nbytes > free:
        raise CacheError(f'{path}: the cache needs up to {_size(nbytes)} and {where} has {_size(free)} free; '
                         'free some space or point cache.root at a larger disk')


def encode_axis(logits: np.ndarray, spec: dict, axis: str):
    """encode_window of one axis's rows with a teacher's stored settings (Cache.teacher_spec)."""
    return encode_window(logits, spec[f'window_{axis}'], spec[f'tail_blocks_{axis}'], spec['levels'],
                         spec['rd_lambda'])


def _column_dtype(values: np.ndarray):
    return str if values.dtype.kind in 'UOT' else values.dtype


def _teacher_attrs(name: str, spec: dict, window: int, lossless: bool, tail_blocks: int, levels: int,
                   rd_lambda: float) -> dict:
    missing = {'union_joints', 'bins_x', 'bins_y', 'bin_map'} - set(spec)
    if missing:
        raise ValueError(f'teacher {name!r} spec lacks {sorted(missing)}')
    union_joints = [int(j) for j in spec['union_joints']]
    bins_x, bins_y = int(spec['bins_x']), int(spec['bins_y'])
    if not lossless:
        try:
            check_coding(levels, rd_lambda)
        except ValueError as e:
            raise ValueError(f'teacher {name!r}: {e}') from None
        if window < 1:
            raise ValueError(f'teacher {name!r}: window {window} must be >= 1')
        for axis, bins in (('x', bins_x), ('y', bins_y)):
            if not 1 <= tail_blocks <= bins:
                raise ValueError(f'teacher {name!r}: tail_blocks {tail_blocks} must be in [1, {bins}] ({axis} bins)')
    datasets = spec.get('datasets')
    return dict(union_joints=union_joints, num_joints=len(union_joints), bins_x=bins_x, bins_y=bins_y,
                bin_map=spec['bin_map'], lossless=bool(lossless),
                datasets=None if datasets is None else [str(d) for d in datasets],
                window_x=bins_x if lossless else min(int(window), bins_x),
                window_y=bins_y if lossless else min(int(window), bins_y),
                tail_blocks_x=1 if lossless else int(tail_blocks), tail_blocks_y=1 if lossless else int(tail_blocks),
                levels=0 if lossless else int(levels), rd_lambda=0.0 if lossless else float(rd_lambda))


def create_cache(path, manifest: dict, instances: InstanceTable, views: np.ndarray, view_fields: list[str],
                 teachers: dict, window: int, lossless: bool, chunk_size: int, *, tail_blocks: int = 1,
                 levels: int = 0, rd_lambda: float = 0.0, codec: str = DEFAULT_CODEC, overwrite: bool = False
                 ) -> 'Cache':
    """Create an empty cache (no teacher rows yet) at `path` (a local path or an fsspec URL); returns it
    opened for writing."""
    path = cache_location(path)
    views = np.asarray(views, dtype=np.float32)
    n = len(instances)
    if views.ndim != 3 or views.shape[1] != n or views.shape[2] != len(view_fields):
        raise ValueError(f'views must be (V, {n}, {len(view_fields)}), got {views.shape}')
    if chunk_size < 1:
        raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
    if path.exists() and not overwrite:
        raise FileExistsError(f'a cache already exists at {path}; open it to resume or remove it')
    n_views = views.shape[0]
    n_chunks = math.ceil(n / chunk_size)
    specs = {name: _teacher_attrs(name, spec, window, lossless, tail_blocks, levels, rd_lambda)
             for name, spec in teachers.items()}
    compressors = compressors_of(codec)
    rows = max(1, min(chunk_size, n))
    shared = views.nbytes + sum(np.asarray(v).nbytes for v in instances.columns().values())
    remote = is_remote(path)
    if remote:  # no rename on object stores: written in place, `complete` set last
        if path.exists():
            _remove(path)
        tmp = path
    else:
        require_space(path, estimate_nbytes(n, n_views, specs, chunk_size, shared))
        tmp = path.parent / f'.{path.name}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}'
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        root = _open_group(tmp, mode='w')
        table = root.create_group('instances')
        for name, values in instances.columns().items():
            values = np.asarray(values)
            table.create_array(name, shape=values.shape, dtype=_column_dtype(values),
                               chunks=(max(1, min(n, 1 << 16)),) + values.shape[1:],
                               compressors=compressors)[...] = values
        root.create_array('views', shape=views.shape, dtype=np.float32, chunks=(1, rows, views.shape[2]),
                          compressors=compressors)[...] = views
        group = root.create_group('teachers')
        for name, spec in specs.items():
            tg = group.create_group(name)
            tg.attrs.update(spec)
            k = spec['num_joints']
            for axis in AXES:
                w = spec[f'window_{axis}']
                tg.create_array(f'{axis}_start', shape=(n_views, n, k), dtype=np.int16,
                                chunks=(1, rows, k), compressors=compressors, fill_value=0)
                tg.create_array(f'{axis}_values', shape=(n_views, n, k, w),
                                dtype=np.uint8 if spec['levels'] else np.float16,
                                chunks=(1, rows, k, w), compressors=compressors, fill_value=0)
                b = spec[f'tail_blocks_{axis}']
                tg.create_array(f'{axis}_tail', shape=(n_views, n, k, b), dtype=np.float16,
                                chunks=(1, rows, k, b), compressors=compressors, fill_value=0)
                tg.create_array(f'{axis}_seen', shape=(n_views, n, k, 2), dtype=np.int16,
                                chunks=(1, rows, k, 2), compressors=compressors, fill_value=0)
                tg.create_array(f'{axis}_outside', shape=(n_views, n, k), dtype=np.float16,
                                chunks=(1, rows, k), compressors=compressors, fill_value=0)
            tg.create_array('done', shape=(n_views, max(n_chunks, 0)), dtype=bool, chunks=(1, 1),
                            compressors=[Crc32cCodec()], fill_value=False)
            tg.create_array('unit_seconds', shape=(n_views, max(n_chunks, 0)), dtype=np.float32, chunks=(1, 1),
                            compressors=[Crc32cCodec()], fill_value=0)
        root.attrs.update(dict(layout=LAYOUT, layout_version=LAYOUT_VERSION, manifest=manifest,
                               n_views=n_views, n_instances=n, chunk_size=int(chunk_size), n_chunks=n_chunks,
                               view_fields=list(view_fields), teacher_names=list(specs), codec=codec))
        root.attrs['complete'] = True  # last: a store without it was interrupted while being created
        if not remote:
            if overwrite and path.exists():
                shutil.rmtree(path)
            os.rename(tmp, path)
    except BaseException:
        if tmp.exists():
            _remove(tmp)
        raise
    return open_cache(path, mode='r+')


_WRITING = None  # in a writer process (stages.dump): the cache it writes units into


def open_for_writing(path) -> None:
    """A writer process's initializer: open the cache once for the units it will be given."""
    global _WRITING
    _WRITING = open_cache(path, mode='r+')


def write_unit_here(*unit) -> None:
    """Cache.write_unit on the cache this process opened with open_for_writing."""
    _WRITING.write_unit(*unit)


def open_cache(path, mode: str = 'r') -> 'Cache':
    """Open an existing cache ('r' to read, 'r+' to write units; a local path or an fsspec URL); clear
    error naming the path otherwise."""
    path = cache_location(path)
    if mode not in ('r', 'r+'):
        raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
    if not path.exists():
        raise CacheError(f'no teacher cache at {path} (run the dump stage first)')
    if not (path / 'zarr.json').is_file():
        raise CacheError(f'{path} is not a Zarr v3 group (no zarr.json); not a teacher cache')
    try:
        root = _open_group(path, mode=mode)
    except Exception as error:  # corrupt metadata, v2 store, ...
        raise CacheError(f'cannot open the teacher cache at {path}: {error}') from error
    attrs = root.attrs.asdict()
    if attrs.get('layout') != LAYOUT:
        raise CacheError(f'{path} is not a teacher cache (layout {attrs.get("layout")!r}, expected {LAYOUT!r})')
    if attrs.get('layout_version') in UNCHECKED_LAYOUT_VERSIONS:
        raise CacheError(f'{path}: cache layout version {attrs["layout_version"]} has no checksums; '
                         'run dump-teachers --no-resume to rebuild it')
    if attrs.get('layout_version') != LAYOUT_VERSION:
        raise CacheError(f'{path} has cache layout version {attrs.get("layout_version")}, this code reads '
                         f'version {LAYOUT_VERSION}; run dump-teachers --no-resume to rebuild it')
    if attrs.get('complete') is not True:
        raise CacheError(f'{path} is incomplete (its creation was interrupted); remove it and dump again')
    return Cache(path, root, attrs, mode)


class Cache:
    """An opened cache. Units are (view, chunk) pairs; rows of a chunk are instances [c*C, (c+1)*C)."""

    def __init__(self, path: Path, root, attrs: dict, mode: str):
        self.path, self.mode = path, mode
        self._root, self._attrs = root, attrs
        self.manifest: dict = attrs['manifest']
        self.n_views: int = attrs['n_views']
        self.n_instances: int = attrs['n_instances']
        self.chunk_size: int = attrs['chunk_size']
        self.n_chunks: int = attrs['n_chunks']
        self.view_fields: list[str] = attrs['view_fields']
        self.teacher_names: list[str] = attrs['teacher_names']
        self._specs = {name: root[f'teachers/{name}'].attrs.asdict() for name in self.teacher_names}
        self._arrays: dict = {}
        self._instances = None
        self._views = None

    def __repr__(self) -> str:
        return (f'Cache({self.path}, views={self.n_views}, instances={self.n_instances}, '
                f'teachers={self.teacher_names})')

    # ---- metadata -------------------------------------------------------------------------
    @property
    def instances(self) -> InstanceTable:
        if self._instances is None:
            group = self._root['instances']
            columns = {}
            for f in fields(InstanceTable):
                column = group[f.name]
                with self._checksummed(column):
                    values = column[...]
                if values.dtype.kind in 'OT':  # variable-length strings -> fixed-width like the table's
                    width = int(np.strings.str_len(values).max()) if values.size else 1
                    values = values.astype(f'<U{max(width, 1)}')
                columns[f.name] = values
            self._instances = InstanceTable(**columns)
        return self._instances

    @property
    def views(self) -> np.ndarray:
        if self._views is None:
            with self._checksummed(self._root['views']):
                self._views = self._root['views'][...]
        return self._views

    def teacher_spec(self, name: str) -> dict:
        if name not in self._specs:
            raise KeyError(f'teacher {name!r} is not in the cache at {self.path} (it has {self.teacher_names})')
        return dict(self._specs[name])

    def chunk_rows(self, chunk: int) -> slice:
        if not 0 <= chunk < self.n_chunks:
            raise IndexError(f'chunk {chunk} outside [0, {self.n_chunks}) in {self.path}')
        return slice(chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, self.n_instances))

    def units(self) -> list[tuple[int, int]]:
        return [(v, c) for v in range(self.n_views) for c in range(self.n_chunks)]

    def rows_of(self, teacher: str) -> np.ndarray:
        """(N,) bool: the rows the teacher is run on (its spec's datasets; all when it has none)."""
        datasets = self.teacher_spec(teacher).get('datasets')
        if datasets is None:
            return np.ones(self.n_instances, dtype=bool)
        return np.isin(self.instances.dataset, datasets)

    def chunks_of(self, teacher: str) -> np.ndarray:
        """(n_chunks,) bool: the chunks holding at least one of the teacher's rows (its units)."""
        if self.n_chunks == 0:
            return np.zeros(0, dtype=bool)
        return np.logical_or.reduceat(self.rows_of(teacher), np.arange(0, self.n_instances, self.chunk_size))

    def _array(self, teacher: str, name: str):
        key = (teacher, name)
        if key not in self._arrays:
            self.teacher_spec(teacher)
            self._arrays[key] = self._root[f'teachers/{teacher}/{name}']
        return self._arrays[key]

    def done(self, teacher: str) -> np.ndarray:
        """(V, n_chunks) bool: units whose rows are fully written."""
        markers = self._array(teacher, 'done')
        with self._checksummed(markers):
            return markers[...]

    def pending_units(self, teacher: str) -> list[tuple[int, int]]:
        done, mine = self.done(teacher), self.chunks_of(teacher)
        return [(v, c) for v, c in self.units() if mine[c] and not done[v, c]]

    # ---- writing --------------------------------------------------------------------------
    def update_manifest(self, **items) -> None:
        """Merge `items` into the manifest (e.g. measured teacher seconds after a dump); rank 0 only."""
        if self.mode != 'r+':
            raise CacheError(f'{self.path} is open read-only; open_cache(path, mode="r+") to write')
        self.manifest = {**self.manifest, **items}
        self._root.attrs['manifest'] = self.manifest

    def write_unit(self, teacher: str, view: int, chunk: int, x_logits: np.ndarray, y_logits: np.ndarray,
                   x_outside: np.ndarray, y_outside: np.ndarray, forward_seconds: float = 0.0) -> None:
        """Encode and write one unit's rows (whole chunks) and its forward time, then mark the unit done."""
        if self.mode != 'r+':
            raise CacheError(f'{self.path} is open read-only; open_cache(path, mode="r+") to write')
        if not 0 <= view < self.n_views:
            raise IndexError(f'view {view} outside [0, {self.n_views}) in {self.path}')
        spec = self.teacher_spec(teacher)
        rows = self.chunk_rows(chunk)
        n, k = rows.stop - rows.start, spec['num_joints']
        given = dict(x=(x_logits, x_outside), y=(y_logits, y_outside))
        encoded = {}
        for axis, (logits, outside) in given.items():
            bins = spec[f'bins_{axis}']
            logits, outside = np.asarray(logits), np.asarray(outside)
            if logits.shape != (n, k, bins) or outside.shape != (n, k):
                raise ValueError(f'{self.path}: teacher {teacher!r} unit (view {view}, chunk {chunk}) expects '
                                 f'{axis} logits ({n}, {k}, {bins}) and outside ({n}, {k}), got '
                                 f'{logits.shape} and {outside.shape}')
            if np.isnan(logits).any():
                raise ValueError(f'{self.path}: teacher {teacher!r} unit (view {view}, chunk {chunk}) has NaN '
                                 f'{axis} logits')
            start, values, tail, seen = encode_axis(logits, spec, axis)
            encoded[axis] = dict(start=start, values=values, tail=tail, seen=seen, outside=outside.astype(np.float16))
        for axis in AXES:
            for name in ROW_FIELDS:
                self._array(teacher, f'{axis}_{name}')[view, rows] = encoded[axis][name]
        self._array(teacher, 'unit_seconds')[view, chunk] = forward_seconds
        self._array(teacher, 'done')[view, chunk] = True  # last: an interrupted unit stays pending

    def mark_pending(self, teacher: str, units) -> None:
        """Clear the done markers of `units` (their chunks failed a checksum): the dump's resume path
        recomputes them. Clearing writes whole marker chunks, so a damaged marker is never read."""
        if self.mode != 'r+':
            raise CacheError(f'{self.path} is open read-only; open_cache(path, mode="r+") to write')
        markers = self._array(teacher, 'done')
        for view, chunk in units:
            markers[view, chunk] = False

    # ---- checksums ------------------------------------------------------------------------
    def _chunk_key(self, array, coords) -> str:
        return array.metadata.encode_chunk_key(tuple(int(c) for c in coords))

    def _first_bad_chunk(self, array, chunks) -> CacheChunkError | None:
        for coords in chunks:
            key = self._chunk_key(array, coords)
            if not chunk_intact(self.path / array.path / key):
                return CacheChunkError(self.path, array.path, key)
        return None

    @staticmethod
    def _chunks(array, view=None):
        """Grid coordinates of every chunk of `array` (of one view when given: the first axis)."""
        grid = [range(n) for n in array.cdata_shape]
        if view is not None:
            grid[0] = [view]
        return itertools.product(*grid)

    @staticmethod
    def _unit_chunk(array, view: int, chunk: int) -> tuple:
        return (view, chunk) + (0,) * (array.ndim - 2)

    @contextlib.contextmanager
    def _checksummed(self, array, view=None):
        """A read of `array` (of one view's chunks when given) that fails a checksum raises
        CacheChunkError naming the chunk: zarr's error does not, so the chunks the read touched are
        checked one by one, on the error path only."""
        try:
            yield
        except ValueError as error:
            if CHECKSUM_MISMATCH not in str(error):
                raise
            bad = self._first_bad_chunk(array, self._chunks(array, view))
            if bad is None:  # rewritten since the read (a concurrent dump): zarr's own error stands
                raise
            raise bad from error

    def verify(self, teachers=None) -> dict:
        """Check the stored checksums of every chunk of the shared arrays (instances, views) and of every
        done unit of `teachers` (default: all), without decoding them. A bad shared chunk raises
        CacheChunkError; returns {teacher: UnitsVerified}. A unit whose marker is damaged counts as
        verified and failed (whether it was done is unknown: it is recomputed)."""
        shared = [array for _, array in self._root['instances'].arrays()] + [self._root['views']]
        for array in shared:
            bad = self._first_bad_chunk(array, self._chunks(array))
            if bad is not None:
                raise bad
        return {t: self._verify_units(t) for t in (teachers or self.teacher_names)}

    def _verify_units(self, teacher: str) -> UnitsVerified:
        markers = self._array(teacher, 'done')
        found = UnitsVerified()
        for unit in self.units():  # a unit whose marker is damaged is recomputed, done or not
            bad = self._first_bad_chunk(markers, [unit])
            if bad is not None:
                found.failed[unit] = bad
        done = self._intact_markers(teacher, found.failed) & self.chunks_of(teacher)[None, :]
        found.checked = len(found.failed) + int(done.sum())
        arrays = [self._array(teacher, name) for name in UNIT_ARRAYS if name != 'done']
        for view, chunk in zip(*np.nonzero(done)):
            unit = (int(view), int(chunk))
            for array in arrays:
                bad = self._first_bad_chunk(array, [self._unit_chunk(array, *unit)])
                if bad is not None:
                    found.failed[unit] = bad
                    break
        return found

    def _intact_markers(self, teacher: str, damaged) -> np.ndarray:
        """(V, n_chunks) done markers, those in `damaged` read as False. Any damaged marker fails a read
        of them all, so then the others are read one by one."""
        if not damaged:
            return self.done(teacher)
        markers = self._array(teacher, 'done')
        done = np.zeros(markers.shape, dtype=bool)
        for unit in self.units():
            if unit not in damaged:
                done[unit] = markers[unit]
        return done

    # ---- reading --------------------------------------------------------------------------
    def _require_done(self, teacher: str, view: int, chunks=None) -> None:
        """The teacher's units of `view` (those of `chunks` only, when given) are written."""
        if not 0 <= view < self.n_views:
            raise IndexError(f'view {view} outside [0, {self.n_views}) in {self.path}')
        markers = self._array(teacher, 'done')
        with self._checksummed(markers, view):
            done = markers[view]  # one row of markers, not the whole (V, n_chunks)
        done = done | ~self.chunks_of(teacher) if chunks is None else done[np.asarray(chunks, dtype=np.int64)]
        if not done.all():
            missing = np.flatnonzero(~done)
            raise CacheError(f'{self.path}: teacher {teacher!r} view {view} has {missing.size} of {done.size} '
                             f'chunks not written (first: {missing[:5].tolist()}); resume the dump')

    def read_view_plane(self, teacher: str, view: int) -> dict:
        """All N rows of one view for one teacher, read whole-chunk: the arrays as stored plus bins_x/bins_y.
        Rows outside the teacher's chunks (rows_of) are zeros."""
        self._require_done(teacher, view)
        spec = self.teacher_spec(teacher)
        plane = {}
        for name in ROW_ARRAYS:
            array = self._array(teacher, name)
            with self._checksummed(array, view):
                plane[name] = array[view]
        plane.update(bins_x=spec['bins_x'], bins_y=spec['bins_y'], levels=spec['levels'])
        return plane

    def read_rows(self, teacher: str, view: int, idx) -> dict:
        """Selected rows of one view (orthogonal indexing: decodes every chunk touched; slow when random).

        For spot checks (fidelity samples); training should use read_view_plane.
        """
        idx = np.asarray(idx, dtype=np.int64)
        self._require_done(teacher, view, np.unique(idx // self.chunk_size))
        spec = self.teacher_spec(teacher)
        plane = {}
        for name in ROW_ARRAYS:
            array = self._array(teacher, name)
            with self._checksummed(array, view):
                plane[name] = array.get_orthogonal_selection((view, idx))
        plane.update(bins_x=spec['bins_x'], bins_y=spec['bins_y'], levels=spec['levels'])
        return plane

    def stored_nbytes(self, teacher: str) -> int:
        """Bytes the teacher's row arrays take on disk (compressed chunks + metadata), done markers excluded."""
        return sum(self._array(teacher, name).nbytes_stored() for name in ROW_ARRAYS)

    def forward_seconds(self, teacher: str) -> float:
        """The teacher's forward time summed over its done units (every run and rank that wrote them)."""
        seconds = self._array(teacher, 'unit_seconds')
        with self._checksummed(seconds):
            return float(seconds[...][self.done(teacher)].sum())

    def written_rows(self, teacher: str) -> int:
        """Instance-view rows whose unit is done."""
        done = self.done(teacher)
        per_chunk = np.array([self.chunk_size] * self.n_chunks, dtype=np.int64)
        if self.n_chunks:
            per_chunk[-1] = self.n_instances - (self.n_chunks - 1) * self.chunk_size
        return int((done * per_chunk[None, :]).sum())


@dataclass
class UnitsVerified:
    """One teacher's units checked by Cache.verify, and those failing a checksum (unit -> the first
    failing chunk's error, in the order found)."""
    checked: int = 0
    failed: dict = field(default_factory=dict)


def reconstruct_rows(plane: dict, idx=slice(None)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows `idx` of a plane -> (x_logp (n,K,Bx) float32, y_logp (n,K,By) float32, x_outside (n,K), y_outside).
    A plane without `levels` (one built by hand, e.g. a benchmark's) holds fp16 windows."""
    out = []
    for axis in AXES:
        out.append(reconstruct(plane[f'{axis}_start'][idx], plane[f'{axis}_values'][idx],
                               plane[f'{axis}_tail'][idx], plane[f'{axis}_seen'][idx], plane[f'bins_{axis}'],
                               plane.get('levels', 0)))
    return (out[0], out[1], plane['x_outside'][idx].astype(np.float32),
            plane['y_outside'][idx].astype(np.float32))
