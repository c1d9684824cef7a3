"""Does a demo teacher leave the mean pose, and when? Backbone output stride and learning rate, side by side.

    .venv/bin/python benchmarks/teacher_escape.py [--dataset coco|mpii] [--steps 1200]
                                                   [--variants stride16:2e-3,stride16:1e-3,stride32:2e-3] [--jobs 2]

Why: trained from scratch on the synthetic twins for the demo's ~1500 steps, a teacher can sit at
the mean pose (it predicts every joint at its average crop position) for the whole run. This measures
the time to leave it for the demo model config as it is (`stride16`: three CSPNeXt stages, an 8x6
map at 128x96) and for the same model with the usual fourth stage (`stride32`: a 4x3 map).

Data: the demo config's synthetic twins (run `make demo` or `cli.py make-synthetic` first). The
dataset's train instances are rendered once through the train stage's own TrainCrops, every view
with its photometric augmentation (fixed per view here), then held in memory so that the
comparison times the model, not JPEG decoding. Val: view 0 of the val split, no augmentation.
Training: AdamW (norm/bias without decay), 50 warm-up steps then a constant lr, batch 32, the
ground-truth SimCC KL loss of the train stage (gt_reduction='batch_mean'), grad clip 1.0, fixed seed.
Each variant runs in its own process with one thread, --jobs (2) at a time.
Every 200 steps: training loss (mean of the last 100 steps) and the val error = mean distance
between argmax-decoded and true joints (visible ones) / crop height; the mean-pose error (every
joint at its train-set mean crop position) is the reference. `left_mean_pose_at` = first evaluated
step whose error is below 0.9 x the mean-pose error (None if none).
The last stdout line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEMO_CONFIG = 'pipeline/configs/demo_synthetic.py'


def model_config(cfg, dataset: str, variant: str) -> dict:
    """The demo teacher's model config as a dict; `stride32` puts P5's fourth stage back."""
    from mmengine.config import Config
    from pipeline.config import resolve
    name = next(n for n, t in cfg.teachers.items() if t.dataset == dataset)
    md = Config.fromfile(str(resolve(cfg.teachers[name].config))).to_dict()
    if variant == 'stride32':
        bb, head = md['model']['backbone'], md['model']['head']
        bb.pop('arch_ovewrite', None)
        bb['out_indices'] = (4,)
        head['in_channels'] = int(1024 * bb['widen_factor'])
        head['in_featuremap_size'] = tuple(s // 32 for s in md['codec']['input_size'])
    elif variant != 'stride16':
        raise ValueError(f'unknown variant {variant!r} (stride16 or stride32)')
    return md


def render(cfg, dataset: str, md: dict) -> dict:
    """Train crops (all views) and val crops (view 0) with their crop-pixel keypoints."""
    from data.images import read_image
    from data.skeletons import union_indices
    from data.views import replay_view, view_keypoints
    from stages.common import split_instances, split_views
    from stages.train import TrainCrops, photometric_policy
    from teachers.rtmpose import build_model
    model = build_model(md)
    joints = union_indices(model.skeleton_name)
    out = {}
    for split in ('train', 'val'):
        table = split_instances(cfg, split)
        keep = np.flatnonzero(table.dataset == dataset)
        sub = table.select(keep)
        views = split_views(cfg, table, int(cfg.views.num_views))[:, keep]
        photometric = photometric_policy(cfg.train.get('photometric', 'main')) if split == 'train' else False
        crops = TrainCrops(sub, views, model.input_size, model.codec, joints, photometric=photometric,
                           seed=int(cfg.seed))
        imgs, kpts, vis = [], [], []
        for v in range(views.shape[0] if split == 'train' else 1):
            crops.set_epoch(0, v)
            for i in range(len(sub)):
                imgs.append(crops[i]['img'])
                _, M = replay_view(read_image(sub.image_path[i]), sub.bbox[i], views[v, i], model.input_size)
                k, w = view_keypoints(sub.keypoints[i], sub.keypoints_visible[i] * sub.annotated[i], views[v, i], M)
                kpts.append(k[joints])
                vis.append(w[joints])
        out[split] = dict(img=np.stack(imgs), kpts=np.stack(kpts), vis=np.stack(vis))
    return out


def run_variant(args) -> dict:
    md, data, lr, steps, seed = args
    import torch
    torch.set_num_threads(1)
    from stages.losses import simcc_kl_loss
    from stages.schedule import param_groups
    from teachers.rtmpose import build_model
    torch.manual_seed(seed)
    model = build_model(md).train()
    codec, (_, h) = model.codec, model.input_size
    tr, va = data['train'], data['val']
    labels = codec.encode(tr['kpts'], tr['vis'])
    imgs = torch.from_numpy(tr['img'])
    tx, ty, tw = (torch.from_numpy(labels[k]).float() for k in
                  ('keypoint_x_labels', 'keypoint_y_labels', 'keypoint_weights'))
    mean_pose = (tr['kpts'] * tr['vis'][..., None]).sum(0) / np.maximum(tr['vis'].sum(0), 1)[:, None]
    seen = va['vis'] > 0
    mean_pose_error = float((np.linalg.norm(mean_pose[None] - va['kpts'], axis=-1) / h)[seen].mean())

    def val_error() -> float:
        model.eval()
        with torch.no_grad():
            sx, sy = model(model.normalize(torch.from_numpy(va['img'])))
        model.train()
        pred = np.stack([sx.argmax(-1).numpy(), sy.argmax(-1).numpy()], -1) / codec.simcc_split_ratio
        return float((np.linalg.norm(pred - va['kpts'], axis=-1) / h)[seen].mean())

    optimizer = torch.optim.AdamW(param_groups(model, 0.05), lr=lr)
    rng = np.random.default_rng(seed)
    losses, curve, t0 = [], [], time.perf_counter()
    for step in range(1, steps + 1):
        for g in optimizer.param_groups:
            g['lr'] = lr * min(1.0, step / 50)
        idx = torch.from_numpy(rng.integers(0, len(imgs), 32))
        sx, sy = model(model.normalize(imgs[idx]))
        loss = simcc_kl_loss(sx, sy, tx[idx], ty[idx], tw[idx], reduction='batch_mean')
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % 200 == 0 or step == steps:
            curve.append(dict(step=step, loss=round(float(np.mean(losses[-100:])), 4),
                              val_error=round(val_error(), 4)))
    escaped = [c['step'] for c in curve if c['val_error'] < 0.9 * mean_pose_error]
    return dict(mean_pose_error=round(mean_pose_error, 4), curve=curve,
                left_mean_pose_at=escaped[0] if escaped else None,
                final_val_error=curve[-1]['val_error'], seconds=round(time.perf_counter() - t0, 1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=DEMO_CONFIG)
    p.add_argument('--dataset', default='coco')
    p.add_argument('--steps', type=int, default=1200)
    p.add_argument('--variants', default='stride16:2e-3,stride16:1e-3,stride32:2e-3')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--jobs', type=int, default=2, help='variants trained at a time (one thread each)')
    a = p.parse_args()
    from pipeline.config import load_config, resolve
    cfg = load_config(resolve(a.config))
    variants = [(v.split(':')[0], float(v.split(':')[1])) for v in a.variants.split(',')]
    configs = {arch: model_config(cfg, a.dataset, arch) for arch, _ in variants}
    t = time.perf_counter()
    data = render(cfg, a.dataset, configs[variants[0][0]])  # same input size for every variant
    print(f'rendered {len(data["train"]["img"])} train / {len(data["val"]["img"])} val crops '
          f'in {time.perf_counter() - t:.0f} s', flush=True)
    jobs = [(copy.deepcopy(configs[arch]), data, lr, a.steps, a.seed) for arch, lr in variants]
    with mp.get_context('spawn').Pool(a.jobs) as pool:
        results = pool.map(run_variant, jobs, chunksize=1)
    figures = {}
    for (arch, lr), r in zip(variants, results):
        key = f'{arch}:{lr:g}'
        figures[key] = r
        print(f'{key:16s} mean pose {r["mean_pose_error"]:.4f}  ' +
              '  '.join(f'{c["step"]}:{c["val_error"]:.4f}' for c in r['curve']) +
              f'  left mean pose at {r["left_mean_pose_at"]}  ({r["seconds"]} s)')
    print(json.dumps(dict(benchmark='teacher_escape', dataset=a.dataset, steps=a.steps, seed=a.seed,
                          variants=figures)))


if __name__ == '__main__':
    main()
