"""Generating the twins: one generator per image, images rendered and written with their annotations,
split into train and val."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from data.skeletons import AIC14, COCO17, Skeleton
from data.twins.figure import AIC_STYLE, COCO_STYLE, MPII_STYLE, Style
from data.twins.render import person_truth, render_scene
from data.twins.writers import (coco_annotation, coco_categories, mpii_record, truth_arrays, write_jpeg, write_json,
                                write_mpii_gt_mat, write_truth)

STYLES = ('coco', 'mpii', 'aic')  # the index of a style seeds its images: append only
DEFAULT_STYLES = ('coco', 'mpii')
SPLITS = ('train', 'val')

def image_rng(seed: int, style: Style, index: int) -> np.random.Generator:
    """One generator per image, so any image can be regenerated alone."""
    return np.random.default_rng([seed, STYLES.index(style.name), index])


def split_of(index: int, n_images: int, val_fraction: float) -> str:
    return 'val' if index >= n_images - int(round(n_images * val_fraction)) else 'train'


def make_coco_twin(root: Path, n_images: int, seed: int, val_fraction: float, size: tuple[int, int],
                   style: Style = COCO_STYLE, skeleton: Skeleton = COCO17) -> dict:
    """A twin in the COCO keypoints format labelling `skeleton`'s joints (COCO's; AI Challenger's in
    make_aic_twin)."""
    w, h = size
    images = {s: [] for s in SPLITS}
    anns = {s: [] for s in SPLITS}
    truths = {s: [] for s in SPLITS}
    for index in range(n_images):
        split, image_id = split_of(index, n_images, val_fraction), index + 1
        scene = render_scene(image_rng(seed, style, index), style, w, h)
        name = f'{image_id:012d}.jpg'
        write_jpeg(root / 'images' / split / name, scene.image)
        images[split].append({'id': image_id, 'file_name': name, 'width': w, 'height': h})
        for i in range(len(scene.people)):
            t = person_truth(scene, i)
            ann = coco_annotation(t, image_id * 10 + i + 1, image_id, skeleton)
            if ann is not None:
                anns[split].append(ann)
                truths[split].append((t, ann['id'], image_id))
    summary = {}
    for split in SPLITS:
        write_json(root / 'annotations' / f'person_keypoints_{split}.json',
                   {'info': {'description': f'synthetic {style.name.upper()}-style twin', 'seed': seed},
                    'licenses': [], 'images': images[split], 'annotations': anns[split],
                    'categories': coco_categories(skeleton)})
        ts, keys, ids = zip(*truths[split]) if truths[split] else ((), (), ())
        write_truth(root / 'annotations' / f'truth_{split}.npz', truth_arrays(list(ts), list(keys), list(ids)))
        summary[split] = {'images': len(images[split]), 'instances': len(anns[split])}
    return summary


def make_aic_twin(root: Path, n_images: int, seed: int, val_fraction: float, size: tuple[int, int]) -> dict:
    """AI Challenger's 14 joints (its names and order) in the COCO keypoints format, as mmpose reads AIC
    (aic_{train,val}.json converted to COCO format): person_keypoints_{split}.json, as the COCO twin."""
    return make_coco_twin(root, n_images, seed, val_fraction, size, AIC_STYLE, AIC14)


def make_mpii_twin(root: Path, n_images: int, seed: int, val_fraction: float, size: tuple[int, int]) -> dict:
    w, h = size
    rows = {s: [] for s in SPLITS}
    truths = {s: [] for s in SPLITS}
    n_img = {s: 0 for s in SPLITS}
    for index in range(n_images):
        split, image_id = split_of(index, n_images, val_fraction), index + 1
        scene = render_scene(image_rng(seed, MPII_STYLE, index), MPII_STYLE, w, h)
        name = f'{image_id:09d}.jpg'
        write_jpeg(root / 'images' / name, scene.image)
        n_img[split] += 1
        for i in range(len(scene.people)):
            t = person_truth(scene, i)
            record = mpii_record(t, name)
            if record is not None:
                truths[split].append((t, len(rows[split]), image_id))
                rows[split].append(record)
    summary = {}
    for split in SPLITS:
        write_json(root / 'annotations' / f'mpii_{split}.json', rows[split], indent=4)
        ts, keys, ids = zip(*truths[split]) if truths[split] else ((), (), ())
        write_truth(root / 'annotations' / f'truth_{split}.npz', truth_arrays(list(ts), list(keys), list(ids)))
        if split == 'val':
            write_mpii_gt_mat(root / 'annotations' / 'mpii_gt_val.mat', list(ts), rows[split])
        summary[split] = {'images': n_img[split], 'instances': len(rows[split])}
    return summary


def make_synthetic(out_dir, n_images: int = 1000, seed: int = 0, val_fraction: float = 0.2,
                   image_size: tuple[int, int] = (256, 256), styles=DEFAULT_STYLES) -> dict:
    """Write the twins of `styles` (n_images images EACH) under out_dir; same seed -> bit-identical files.
    image_size is (width, height). Returns a summary with image/instance counts per twin and split."""
    if n_images < 1:
        raise ValueError(f'n_images must be >= 1, got {n_images}')
    if not 0 <= val_fraction < 1:
        raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}')
    unknown = set(styles) - set(STYLES)
    if unknown:
        raise ValueError(f'unknown synthetic styles {sorted(unknown)}; known: {list(STYLES)}')
    out = Path(out_dir)
    size = (int(image_size[0]), int(image_size[1]))
    summary = {'out_dir': str(out), 'seed': seed, 'n_images': n_images, 'image_size': size}
    for name, make in (('coco', make_coco_twin), ('mpii', make_mpii_twin), ('aic', make_aic_twin)):
        if name in styles:
            t0 = time.perf_counter()
            summary[name] = make(out / name, n_images, seed, val_fraction, size)
            summary[name]['seconds'] = round(time.perf_counter() - t0, 2)
    return summary
