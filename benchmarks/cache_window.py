"""Choose the cache row encoding: fidelity, size and speed of each candidate against the full rows,
on real teacher outputs.

Runs each teacher of a pipeline config (default: the demo's shipped teachers) on replayed views of
the train split, maps the logits into the student's bins exactly as the dump does, then encodes /
reconstructs the rows with each candidate:
  wW/bB   a window of W bins around the peak + B tail blocks + the seen range (fp16 log-probabilities,
          levels=0; B = 1 is one tail number for the whole outside)
  cL/wW/bB  the same with the window coded in L levels (uint8 codes, cache/window.py; w* = the whole
          row), each bin rounded to its nearest code (the configs' encoding: c32/w*/b1)
  cL/wW/bB/rdR  the same with the codes of each row chosen by the rate-distortion search at
          rd_lambda R (cache.window.rd_codes)
  q8      log-probabilities of the whole row quantised to 8 bits in [-Q8_RANGE, 0] (an alternative)
  full    fp16 log-probabilities of the whole row (cache.lossless=True)
Columns: KL(full || reconstructed) mean and p99 at the distribution the student is distilled towards
(the rows sharpened by the head loss's beta / train.temperature: pipeline.models.kd_temperature; 10x
sharper than the stored rows for RTMPose), and mean on the stored rows themselves (T=1),
argmax agreement, bytes per instance·view·teacher row (all joints, x and y) as stored with the
cache's codec (cache.store.DEFAULT_CODEC, one chunk of the sampled rows per array), with blosc-zstd-9
+ bit shuffle, with blosc-zstd-5 + byte shuffle (the previous default) and uncompressed, encode and decode rows/s.
--student-size W,H maps the rows into the bins of another student input size (192,256: the
full-scale config's 384 x 512 bins) instead of the config's student.
Also the KL of rows with student bins the teacher's crop does not reach, against the other rows.
Last stdout line: one JSON object.

    python benchmarks/cache_window.py [--config pipeline/configs/demo_synthetic.py] [--rows 512]
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

from cache.store import DEFAULT_CODEC, compressors_of  # noqa: E402
from cache.window import FP16_LOWEST, encode_window, kl_at_temperature, log_softmax, reconstruct  # noqa: E402
from data.images import decode_grouped  # noqa: E402
from data.views import teacher_inputs  # noqa: E402
from pipeline.config import load_config, parse_cfg_options, resolve  # noqa: E402
from pipeline.models import kd_temperature, model_geometry  # noqa: E402
from pipeline.run import pick_device, split_instances, split_views, view_stages  # noqa: E402
from teachers.checkpoints import load_model  # noqa: E402
from teachers.targets import teacher_rows  # noqa: E402

# (window, tail blocks, levels, rd_lambda); window None = the whole row
# (every row of docs/results.md's 'Cache rows' table)
CANDIDATES = [(16, 16, 0, 0), (32, 32, 0, 0), (64, 32, 0, 0), (32, 64, 0, 0), (64, 64, 0, 0), (96, 32, 0, 0),
              (64, 16, 31, 0), (128, 8, 31, 0), (None, 8, 31, 0), (None, 1, 24, 0), (None, 1, 28, 0),
              (None, 1, 31, 0), (None, 1, 32, 0), (None, 1, 36, 0), (None, 1, 40, 0), (None, 1, 63, 0),
              (None, 1, 32, 2e5), (None, 1, 36, 8e4), (None, 1, 36, 1e5), (None, 1, 36, 1.2e5), (None, 1, 36, 1.4e5),
              (None, 1, 40, 8e4), (None, 1, 40, 1e5)]
Q8_RANGE = 24.0  # log-probability floor of the 8-bit rows: e^-24 ~ 4e-11


def sample_teacher_rows(cfg, rows: int, device, student_size: tuple | None = None) -> tuple[int, tuple, dict]:
    """Each teacher's rows on `rows` sampled train instances, each under one of its replayed views, mapped
    into the student's bins as the dump maps them (student_size W,H: another student input size's bins).
    -> (rows sampled, (bins x, bins y), {teacher: (x logits, y logits, x outside mass, y outside mass)})."""
    table = split_instances(cfg, 'train')
    views = split_views(cfg, table, view_stages(cfg, 'train'))
    student = model_geometry(cfg.student.config)
    size = student_size or student['input_size']
    bins = (int(size[0] * student['split']), int(size[1] * student['split']))
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(table), size=min(rows, len(table)), replace=False))
    vidx = rng.integers(views.shape[0], size=len(idx))
    images = decode_grouped(table.image_path[idx])
    sampled = {}
    for name, t in cfg.teachers.items():
        model = load_model(resolve(t.config), resolve(t.checkpoint), device=device).eval()
        crops, box_scales = teacher_inputs(images, table.bbox[idx], views[vidx, idx], {name: model.input_size})
        sampled[name] = tuple(a.cpu().numpy() for a in teacher_rows(model, crops[name], box_scales, size,
                                                                    student['split'], device, batch_size=64))
    return len(idx), bins, sampled


def compressed_bytes(arrays: list[np.ndarray], codec: str = DEFAULT_CODEC) -> int:
    """Bytes the arrays take stored by Zarr with one of the cache's codecs, each as one chunk."""
    import zarr
    total = 0
    for a in arrays:
        z = zarr.create_array(store=zarr.storage.MemoryStore(), shape=a.shape, dtype=a.dtype, chunks=a.shape,
                              compressors=compressors_of(codec), fill_value=0)
        z[...] = a
        total += z.nbytes_stored() - len(z.metadata.to_buffer_dict(zarr.core.buffer.default_buffer_prototype())
                                         ['zarr.json'].to_bytes())
    return total


def windowed(rows: np.ndarray, w: int, blocks: int, levels: int, rd_lambda: float):
    t = time.perf_counter()
    enc = encode_window(rows, w, blocks, levels, rd_lambda)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    rec = reconstruct(*enc, rows.shape[-1], levels)
    return rec, list(enc), t_enc, time.perf_counter() - t


def quantised8(rows: np.ndarray):
    t = time.perf_counter()
    logp = log_softmax(rows)
    q = np.clip(np.round(-logp * (255 / Q8_RANGE)), 0, 255).astype(np.uint8)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    rec = np.where(q == 255, FP16_LOWEST, -q.astype(np.float32) * (Q8_RANGE / 255))
    return rec, [q], t_enc, time.perf_counter() - t


def full_fp16(rows: np.ndarray):
    t = time.perf_counter()
    v = np.maximum(log_softmax(rows), FP16_LOWEST).astype(np.float16)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    return v.astype(np.float32), [v], t_enc, time.perf_counter() - t


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py')
@click.option('--cfg-options', 'cfg_options', multiple=True, help='KEY=VALUE overrides of the config')
@click.option('--rows', default=512, help='instance-views sampled per teacher')
@click.option('--device', default=None)
@click.option('--student-size', default=None, help='W,H: map into the bins of this student input size')
def main(config_path, cfg_options, rows, device, student_size):
    cfg = load_config(resolve(config_path), parse_cfg_options(cfg_options))
    size = tuple(int(v) for v in student_size.split(',')) if student_size else None
    n, bins, sampled = sample_teacher_rows(cfg, rows, pick_device(device), size)
    # The student is distilled towards softmax(beta / T * stored log-probs): fidelity is measured there.
    temperature = kd_temperature(cfg)
    result = dict(config=str(config_path), rows=n, temperature=temperature, codec=DEFAULT_CODEC,
                  bins=list(bins),
                  teachers={})
    print(f'{"teacher":8} {"encoding":>18} {"KL mean":>9} {"KL p99":>9} {"KL@T=1":>9} {"argmax":>7} '
          f'{"B/row":>7} {"zstd9 B":>7} {"zstd5 B":>7} {"raw B":>7} {"enc r/s":>9} {"dec r/s":>9}  unseen-bin rows: KL vs others')
    for name, (sx, sy, ox, oy) in sampled.items():
        k = sx.shape[1]
        unseen = np.concatenate([np.isneginf(r).any(-1).ravel() for r in (sx, sy)])
        outside = [ox.astype(np.float16), oy.astype(np.float16)]
        encodings = [(f'{f"c{q}/" if q else ""}w{w or "*"}/b{b}{f"/rd{rd:.2g}" if rd else ""}',
                      lambda r, w=w, b=b, q=q, rd=rd: windowed(r, min(w or r.shape[-1], r.shape[-1]), b, q, rd))
                     for w, b, q, rd in CANDIDATES]
        encodings += [('q8', quantised8), ('full', full_fp16)]
        entries = []
        for label, encode in encodings:
            kl, kl1, agree, stored, t_enc, t_dec = [], [], [], [], 0.0, 0.0
            for r in (sx, sy):
                rec, arrays, te, td = encode(r)
                t_enc, t_dec = t_enc + te, t_dec + td
                kl.append(kl_at_temperature(r, rec, temperature).ravel())
                kl1.append(kl_at_temperature(r, rec, 1.0).ravel())
                agree.append((np.argmax(r, -1) == np.argmax(rec, -1)).ravel())
                stored += arrays
            kl, kl1, agree = np.concatenate(kl), np.concatenate(kl1), np.concatenate(agree)
            e = dict(encoding=label, kl_mean=float(kl.mean()), kl_p99=float(np.quantile(kl, 0.99)),
                     kl_mean_t1=float(kl1.mean()), argmax_agreement=float(agree.mean()),
                     bytes_per_row=compressed_bytes(stored + outside) / n,
                     zstd9_bit_bytes_per_row=compressed_bytes(stored + outside, 'zstd9-bit') / n,
                     zstd5_bytes_per_row=compressed_bytes(stored + outside, 'zstd5') / n,
                     raw_bytes_per_row=sum(a.nbytes for a in stored + outside) / n,
                     encode_rows_per_s=n / t_enc, decode_rows_per_s=n / t_dec,
                     rows_with_unseen_bins=float(unseen.mean()),
                     kl_rows_with_unseen_bins=float(kl[unseen].mean()) if unseen.any() else None,
                     kl_rows_without_unseen_bins=float(kl[~unseen].mean()) if (~unseen).any() else None)
            entries.append(e)
            print(f'{name:8} {label:>18} {e["kl_mean"]:9.2e} {e["kl_p99"]:9.2e} {e["kl_mean_t1"]:9.2e} '
                  f'{e["argmax_agreement"]:7.4f} {e["bytes_per_row"]:7.0f} {e["zstd9_bit_bytes_per_row"]:7.0f} {e["zstd5_bytes_per_row"]:7.0f} '
                  f'{e["raw_bytes_per_row"]:7.0f} '
                  f'{e["encode_rows_per_s"]:9.0f} {e["decode_rows_per_s"]:9.0f}  '
                  f'{e["rows_with_unseen_bins"]:.2f} of rows: {e["kl_rows_with_unseen_bins"] or 0:.1e} vs '
                  f'{e["kl_rows_without_unseen_bins"] or 0:.1e}')
        result['teachers'][name] = dict(joints=k, bins=list(bins), full_fp16_bytes_per_row=k * sum(bins) * 2,
                                        entries=entries)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
