"""View replay throughput: decode grouped by image vs one decode per instance, measured side by side.

Generates its own JPEGs (several persons each) in a temp folder, draws 'main' views for every person,
and replays them (decode + one warpAffine) both ways, alternating the two over several rounds and
keeping each one's best round. Last stdout line: one JSON object with every figure.

    python benchmarks/data_views.py [--images 24] [--persons 6] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.images import decode_grouped, read_image  # noqa: E402
from data.skeletons import COCO17  # noqa: E402
from data.views import draw_views, replay_view  # noqa: E402

INPUT_SIZE = (192, 256)


def make_dataset(folder: Path, n_images: int, persons: int, size=(640, 480), seed=0):
    """JPEGs with smooth random texture and `persons` boxes + keypoints per image."""
    rng = np.random.default_rng(seed)
    paths, boxes, kps = [], [], []
    w, h = size
    for i in range(n_images):
        small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        p = folder / f'{i:06d}.jpg'
        cv2.imwrite(str(p), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        for _ in range(persons):
            bw, bh = rng.uniform(60, 200), rng.uniform(120, 400)
            x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            boxes.append([x1, y1, x1 + bw, y1 + bh])
            kps.append(np.array([x1, y1]) + rng.uniform(0, 1, (COCO17.num_joints, 2)) * [bw, bh])
            paths.append(str(p))
    return paths, np.array(boxes, np.float32), np.array(kps, np.float32)


def replay_per_instance(paths, boxes, views):
    for i, p in enumerate(paths):
        replay_view(read_image(p), boxes[i], views[i], INPUT_SIZE)


def replay_grouped(paths, boxes, views):
    decoded = decode_grouped(paths)
    for i in range(len(paths)):
        replay_view(decoded[i], boxes[i], views[i], INPUT_SIZE)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--images', type=int, default=24)
    ap.add_argument('--persons', type=int, default=6)
    ap.add_argument('--rounds', type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        paths, boxes, kps = make_dataset(Path(tmp), args.images, args.persons)
        n = len(paths)
        views = draw_views(0, 0, np.arange(n), 2, kps, np.ones((n, COCO17.num_joints), np.float32), boxes, 'main',
                           skeleton=COCO17)[1]
        replay_grouped(paths[:args.persons], boxes, views)  # warm-up (page cache, codec init)
        best = {'per_instance': np.inf, 'grouped': np.inf}
        for _ in range(args.rounds):
            for name, fn in (('per_instance', replay_per_instance), ('grouped', replay_grouped)):
                t0 = time.perf_counter()
                fn(paths, boxes, views)
                best[name] = min(best[name], time.perf_counter() - t0)
        t0 = time.perf_counter()
        decode_grouped(paths)
        decode_s = time.perf_counter() - t0

    per = n / best['per_instance']
    grp = n / best['grouped']
    print(f'{n} crops {INPUT_SIZE[0]}x{INPUT_SIZE[1]} from {args.images} images ({args.persons} persons each)')
    print(f'  per-instance decode: {per:8.1f} crops/s')
    print(f'  grouped by image   : {grp:8.1f} crops/s')
    print(f'  ratio grouped / per-instance: {grp / per:.2f}x')
    print(json.dumps({
        'benchmark': 'data_views', 'crops': n, 'images': args.images, 'persons_per_image': args.persons,
        'image_size': [640, 480], 'input_size': list(INPUT_SIZE), 'rounds': args.rounds,
        'per_instance_crops_per_s': round(per, 1), 'grouped_crops_per_s': round(grp, 1),
        'ratio_grouped_over_per_instance': round(grp / per, 3),
        'per_instance_best_s': round(best['per_instance'], 4), 'grouped_best_s': round(best['grouped'], 4),
        'grouped_decode_only_s': round(decode_s, 4), 'cv2_threads': cv2.getNumThreads(),
    }))


if __name__ == '__main__':
    main()
