"""How much of a teacher's drop on the other twin is framing? Each shipped teacher on both twins' val
split, once with the dataset's own boxes and once with tight boxes around the same people (the
in-image truth keypoints). PCK@0.5 against the full truth, on the joints the teacher predicts.
Last stdout line: one JSON object.

    python benchmarks/teacher_framing.py [--config pipeline/configs/demo_synthetic.py]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.skeletons import union_mask  # noqa: E402
from data.truth import load_truth, truth_rows  # noqa: E402
from outputs.evaluate import pck_union  # noqa: E402
from pipeline.config import load_config, resolve  # noqa: E402
from pipeline.run import split_instances  # noqa: E402
from teachers.inference import predict_model  # noqa: E402
from teachers.checkpoints import load_model  # noqa: E402


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py')
def main(config_path):
    cfg = load_config(resolve(config_path))
    table = split_instances(cfg, 'val')
    out = {}
    for name, t in cfg.teachers.items():
        model = load_model(resolve(t.config), resolve(t.checkpoint))
        covered = union_mask(model.skeleton_name)
        for ds in cfg.datasets:
            rows = table.select(np.flatnonzero(table.dataset == ds))
            truth = load_truth(resolve(cfg.datasets[ds].truth.val))
            at = truth_rows(rows, truth)
            kp, inside = truth['keypoints21'][at], truth['in_image21'][at]
            tight = rows.select(np.arange(len(rows)))
            tight.bbox = np.array([np.concatenate([k[v].min(0), k[v].max(0)]) for k, v in zip(kp, inside)], np.float32)
            for label, tab in (('dataset_boxes', rows), ('tight_boxes', tight)):
                k, _ = predict_model(model, tab, torch.device('cpu'))
                r = pck_union(k, kp, truth['visible21'][at] * covered[None], truth['head_size'][at],
                              rows.annotated[0], 0.5)
                out[f'{name} on {ds}, {label}'] = round(100 * r['all'], 1)
                print(f'teacher {name} on the {ds} twin, {label}: PCK {100 * r["all"]:.1f}')
    print(json.dumps(dict(benchmark='teacher_framing', config=config_path, pck=out)))


if __name__ == '__main__':
    main()
