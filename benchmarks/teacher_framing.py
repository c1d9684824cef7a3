"""How much of a teacher's drop on the other twin is framing, and how much is the poses? Each shipped
teacher on both twins' val split, once with the dataset's own boxes and once with tight boxes around
the same people (the in-image truth keypoints). PCK@0.5 against the full truth, on the joints the
teacher predicts. On its own twin also with the MPII format's box around the same people (the square
around the dataset's box; the MPII-style twin squares the body's box the same way): what that
framing alone costs a teacher. Where the truth records each figure's activity and the other twin has
figures doing one the teacher's own twin never draws (in its train truth), the same split by that. And how much of the teacher's crop a person fills: the median of (height of the in-image truth
keypoints / height of the crop) on each twin. Last stdout line: one JSON object.

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

from data.geometry import bbox_cs2xyxy, bbox_xyxy2cs, fix_aspect_ratio  # noqa: E402
from data.datasets import datasets_union  # noqa: E402
from data.skeletons import model_skeleton, union_mask  # noqa: E402
from data.views import BBOX_PADDING  # noqa: E402
from data.truth import load_truth, truth_in_union, truth_rows  # noqa: E402
from outputs.evaluate import pck_union  # noqa: E402
from pipeline.config import load_config, resolve  # noqa: E402
from pipeline.run import split_instances  # noqa: E402
from teachers.inference import predict_model  # noqa: E402
from teachers.checkpoints import load_model  # noqa: E402


def square_boxes(bbox: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy -> the square of side max(w, h) on the same centre (the MPII format's box)."""
    center, size = bbox_xyxy2cs(bbox, padding=1.0)
    return bbox_cs2xyxy(center, fix_aspect_ratio(size, 1.0)).astype(np.float32)


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py')
def main(config_path):
    cfg = load_config(resolve(config_path))
    table = split_instances(cfg, 'val')
    union = datasets_union(cfg.datasets)
    out = {}
    for name, t in cfg.teachers.items():
        model = load_model(resolve(t.config), resolve(t.checkpoint))
        covered = union_mask(model_skeleton(model.skeleton_name, union), union)
        own_truth = load_truth(resolve(cfg.datasets[t.dataset].truth.train))
        own_activities = set(own_truth['activity'].tolist()) if 'activity' in own_truth else None
        for ds in cfg.datasets:
            rows = table.select(np.flatnonzero(table.dataset == ds))
            truth = load_truth(resolve(cfg.datasets[ds].truth.val))
            at = truth_rows(rows, truth)
            kp, vis = truth_in_union(truth, union, at)
            inside = truth_in_union(dict(truth, visible=truth['in_image']), union, at)[1]
            height = np.array([k[v][:, 1].max() - k[v][:, 1].min() for k, v in zip(kp, inside)])
            h_in, w_in = model.input_size[1], model.input_size[0]
            crop_h = fix_aspect_ratio(bbox_xyxy2cs(rows.bbox, padding=BBOX_PADDING)[1], w_in / h_in)[:, 1]
            fill = float(np.median(height / crop_h))
            out[f'{name} on {ds}, person height / crop height (median)'] = round(fill, 2)
            print(f'teacher {name} ({h_in}x{w_in}) on the {ds} twin: a person spans {fill:.2f} of the crop height (median)')
            tight = rows.select(np.arange(len(rows)))
            tight.bbox = np.array([np.concatenate([k[v].min(0), k[v].max(0)]) for k, v in zip(kp, inside)], np.float32)
            boxes = [('dataset_boxes', rows), ('tight_boxes', tight)]
            if ds == t.dataset:
                square = rows.select(np.arange(len(rows)))
                square.bbox = square_boxes(rows.bbox)
                boxes.append(('square_boxes', square))
            groups = {'': np.ones(len(at), bool)}
            if own_activities is not None and 'activity' in truth:
                shared = np.isin(truth['activity'][at], sorted(own_activities))
                if not shared.all():  # else the split is the whole set again
                    groups.update({', activities its twin draws': shared, ', activities its twin never draws': ~shared})
            for label, tab in boxes:
                k, _ = predict_model(model, tab, torch.device('cpu'), union)
                for group, m in groups.items():
                    if not m.any():
                        continue
                    r = pck_union(k[m], kp[m], vis[m] * covered[None], truth['head_size'][at][m],
                                  rows.annotated[0], 0.5)
                    out[f'{name} on {ds}, {label}{group}'] = round(100 * r['all'], 1)
                    print(f'teacher {name} on the {ds} twin, {label}{group} ({int(m.sum())} people): '
                          f'PCK {100 * r["all"]:.1f}')
    print(json.dumps(dict(benchmark='teacher_framing', config=config_path, pck=out)))


if __name__ == '__main__':
    main()
