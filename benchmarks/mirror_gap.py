"""How far a mirrored cached row is from the live teacher on the mirrored crop (train.flip_views).

For each teacher, on n instances of a split (one view each: the un-augmented crop on val, a stage-1 view
on train): its rows on the crop and on the crop's mirror (data.views.mirror_matrix), both over the
student's bins. The train-time flip uses mirror_simcc(row of the crop) in place of the row of the
mirror; this prints KL(live row of the mirror || mirrored row) on x (the mirror's axis), the same with
mmpose's plain bin reversal instead of the exact mirror, and on y, where the mirror moves nothing: the
network's own left/right asymmetry. At the distillation temperature (what the student learns from)
and at T = 1. Last stdout line: one JSON object.

    python benchmarks/mirror_gap.py [--split val] [--n 160]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cache.window import kl_at_temperature  # noqa: E402
from data.images import read_image  # noqa: E402
from data.skeletons import get_skeleton  # noqa: E402
from data.views import mirror_matrix, view_box_scales, view_geometry, warp_crop  # noqa: E402
from pipeline.config import load_config, resolve  # noqa: E402
from pipeline.models import kd_temperature, model_geometry  # noqa: E402
from pipeline.run import split_instances, split_views, view_stages  # noqa: E402
from teachers.checkpoints import load_model  # noqa: E402
from teachers.simcc import mirror_simcc  # noqa: E402
from teachers.targets import teacher_rows  # noqa: E402


def mirror_kl(model, table, rows, views, student: dict, temperature: float) -> dict:
    """Per row and joint: KL(live row of the mirrored crop || mirrored row of the crop) on x ('x'),
    the same with the bins only reversed ('x_reversed'), and on y ('y'), at `temperature`."""
    size = tuple(model.input_size)
    crops, mirrored = [], []
    for i in rows:
        img = read_image(table.image_path[i])
        M = view_geometry(table.bbox[i], views[i], size)[4]
        crops.append(warp_crop(img, M, size))
        mirrored.append(warp_crop(img, mirror_matrix(M, size), size))
    scales = view_box_scales(table.bbox[rows], views[rows])
    with torch.no_grad():
        a, b = ([v.numpy() for v in teacher_rows(model, np.stack(c), scales, student['input_size'], student['split'],
                                                 torch.device('cpu'))] for c in (crops, mirrored))
    flip = get_skeleton(model.skeleton_name).flip_indices
    mx, my = mirror_simcc(a[0], a[1], flip)
    return dict(x=kl_at_temperature(b[0], mx, temperature), y=kl_at_temperature(b[1], my, temperature),
                x_reversed=kl_at_temperature(b[0], a[0][:, flip, ::-1], temperature))


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py')
@click.option('--split', default='val', type=click.Choice(['train', 'val']))
@click.option('--n', default=160, show_default=True)
def main(config_path, split, n):
    torch.set_num_threads(1)
    cfg = load_config(resolve(config_path))
    table = split_instances(cfg, split)
    rows = np.linspace(0, len(table) - 1, min(n, len(table))).astype(int)
    views = split_views(cfg, table, view_stages(cfg, split))[0]
    student = model_geometry(cfg.student.config)
    out = {}
    for name, t in cfg.teachers.items():
        model = load_model(resolve(t.config), resolve(t.checkpoint)).eval()
        for label, temperature in (('kd', kd_temperature(cfg)), ('T1', 1.0)):
            kl = mirror_kl(model, table, rows, views, student, temperature)
            out[f'{name} {label}'] = {k: dict(mean=float(v.mean()), median=float(np.median(v))) for k, v in kl.items()}
            print(f'{name:6} T={temperature:<5g} KL mean (median): x exact {kl["x"].mean():.2e} '
                  f'({np.median(kl["x"]):.2e}), x plain reversal {kl["x_reversed"].mean():.2e} '
                  f'({np.median(kl["x_reversed"]):.2e}), y {kl["y"].mean():.2e} ({np.median(kl["y"]):.2e})')
    print(json.dumps(dict(benchmark='mirror_gap', config=config_path, split=split, n=len(rows), kl=out)))


if __name__ == '__main__':
    main()
