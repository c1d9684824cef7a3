"""Choose the cache window w: fidelity and size of windowed rows vs full rows, on real teacher outputs.

Runs each teacher of a pipeline config (default: the demo's, trained by `make demo`) on replayed views
of the train split, maps the logits into the student's bins exactly as the dump does, then encodes /
reconstructs them at several window widths: KL(full || reconstructed) at the training temperature and
at T=1, argmax agreement, and bytes per row (one instance-view-teacher row, x and y, all joints),
uncompressed. Last stdout line: one JSON object.

    python benchmarks/cache_window.py [--config pipeline/configs/demo_synthetic.py] [--rows 512]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cache.fidelity import fidelity_by_window  # noqa: E402
from cache.window import encode_window, kl_at_temperature, log_softmax, reconstruct  # noqa: E402
from data.geometry import teacher_to_student_bins  # noqa: E402
from data.images import decode_grouped  # noqa: E402
from data.views import replay_view, view_box_scales  # noqa: E402
from pipeline.config import load_config, resolve  # noqa: E402
from stages.common import model_geometry, pick_device, split_instances, split_views  # noqa: E402
from stages.dump import run_teacher, to_student_bins  # noqa: E402
from teachers.checkpoints import load_model  # noqa: E402

WIDTHS = (8, 16, 24, 32, 48, 64)


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py')
@click.option('--rows', default=512, help='instance-views sampled per teacher')
@click.option('--device', default=None)
def main(config_path, rows, device):
    cfg = load_config(resolve(config_path))
    device = pick_device(device)
    table = split_instances(cfg, 'train')
    views = split_views(cfg, table, int(cfg.views.num_views))
    student = model_geometry(cfg.student.config)
    size = student['input_size']
    bins = (int(size[0] * student['split']), int(size[1] * student['split']))
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(table), size=min(rows, len(table)), replace=False))
    vidx = rng.integers(views.shape[0], size=len(idx))
    temperature = float(cfg.train.get('temperature', 1.0))
    temps = sorted({temperature, 1.0})
    images = decode_grouped(table.image_path[idx])
    result = dict(config=str(config_path), rows=int(len(idx)), temperatures=temps, teachers={})
    print(f'{"teacher":8} {"w":>5} ' + ' '.join(f'{"KL@T=" + str(t):>12}' for t in temps)
          + f' {"argmax":>8} {"bytes/row":>10} {"vs full":>8}')
    for name, t in cfg.teachers.items():
        model = load_model(resolve(t.config), resolve(t.checkpoint), device=device).eval()
        bm = teacher_to_student_bins(size, model.input_size, view_box_scales(table.bbox[idx], views[vidx, idx]),
                                     student['split'], model.codec.simcc_split_ratio)
        crops = np.stack([replay_view(img, table.bbox[r], views[v, r], model.input_size)[0]
                          for img, r, v in zip(images, idx, vidx)])
        x, y = run_teacher(model, crops, device, 64)
        sx, sy, _, _ = (a.cpu().numpy() for a in to_student_bins(x, y, bm, bins))
        k = sx.shape[1]
        full_bytes = k * (bins[0] + bins[1]) * 2
        entries = []
        for w in WIDTHS + (max(bins),):
            wx, wy = min(w, bins[0]), min(w, bins[1])
            fx = fidelity_by_window(sx, [wx], temps)[0]
            fy = fidelity_by_window(sy, [wy], temps)[0]
            row_bytes = k * ((2 + 2 * wx + 2 + 2) + (2 + 2 * wy + 2 + 2))  # start, values, tail, outside
            e = dict(window=w, kl={str(tt): float(np.mean([fx['kl'][str(tt)]['mean'], fy['kl'][str(tt)]['mean']]))
                                   for tt in temps},
                     kl_max={str(tt): float(max(fx['kl'][str(tt)]['max'], fy['kl'][str(tt)]['max'])) for tt in temps},
                     argmax_agreement=float((fx['argmax_agreement'] + fy['argmax_agreement']) / 2),
                     bytes_per_row=row_bytes, full_fp16_bytes_per_row=full_bytes,
                     size_ratio=row_bytes / full_bytes)
            # Rows with student bins the teacher's native crop does not reach (-inf) vs the others,
            # at the training temperature: the tail spreads mass over those bins too.
            t0 = temperature
            kl_rows = np.concatenate([kl_at_temperature(log_softmax(r), reconstruct(
                *encode_window(log_softmax(r), min(w, r.shape[-1])), r.shape[-1]), t0).ravel() for r in (sx, sy)])
            unseen = np.concatenate([np.isneginf(r).any(-1).ravel() for r in (sx, sy)])
            e['rows_with_unseen_bins'] = float(unseen.mean())
            e['kl_rows_with_unseen_bins'] = float(kl_rows[unseen].mean()) if unseen.any() else None
            e['kl_rows_without_unseen_bins'] = float(kl_rows[~unseen].mean()) if (~unseen).any() else None
            entries.append(e)
            label = 'full' if w == max(bins) else str(w)
            print(f'{name:8} {label:>5} ' + ' '.join(f'{e["kl"][str(tt)]:12.2e}' for tt in temps)
                  + f' {e["argmax_agreement"]:8.4f} {row_bytes:10d} {e["size_ratio"]:8.3f}'
                  + f'  unseen-bin rows {e["rows_with_unseen_bins"]:.2f}: KL {e["kl_rows_with_unseen_bins"] or 0:.2e}'
                  + f' vs {e["kl_rows_without_unseen_bins"] or 0:.2e}')
        result['teachers'][name] = entries
    print(json.dumps(result))


if __name__ == '__main__':
    main()
