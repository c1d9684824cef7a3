"""The one check of a cache against the config that reads or resumes it: the manifest a cache built
from the config must carry, and how an open cache differs from it."""
from __future__ import annotations

import numpy as np
from mmengine.config import Config

from cache.manifest import MATCH_KEYS, TEACHER_CROPS, build_manifest, diff_manifest
from data.datasets import datasets_union
from data.files import sha256_file
from data.instances import InstanceTable
from data.views import VIEW_FIELDS
from pipeline.config import resolve
from pipeline.models import model_geometry
from pipeline.run import view_stages


def cache_differences(cfg: Config, split: str, cache, table: InstanceTable, stages: list[dict] | None = None,
                      exact: bool = False) -> list[str]:
    """How an open cache differs from what `cfg` would write for `split` (empty: it fits): its manifest,
    then its rows against the split's instances. A cache with more views per stage than `stages` asks
    for fits a reader (a run reads the first ones); `exact` (a dump resuming it) asks for the same."""
    stages = stages or view_stages(cfg, split)
    cached = cache.manifest.get('views', {}).get('stages') or []
    if not exact and len(cached) == len(stages) and all(c.get('num_views', 0) >= s['num_views']
                                                        for c, s in zip(cached, stages)):
        stages = [dict(s, num_views=c['num_views']) for c, s in zip(cached, stages)]
    diffs = diff_manifest(expected_manifest(cfg, split, stages, table), cache.manifest, keys=MATCH_KEYS)
    if not diffs and (len(cache.instances) != len(table)
                      or not np.array_equal(cache.instances.instance_key, table.instance_key)):
        diffs = [f'instances: the cache rows are not the {split} split\'s instances in the config\'s order']
    return diffs


def check_cache(cfg: Config, split: str, cache, table: InstanceTable, stages: list[dict] | None = None, *,
                exact: bool = False, finished: bool = True, remedy: str = 'run dump-teachers again') -> None:
    """The one check of a cache against the config that reads or resumes it: refused, in one message
    naming the cache, the first difference and what to do, when it was built from another config or
    (`finished`) its dump has units pending."""
    diffs = cache_differences(cfg, split, cache, table, stages, exact=exact)
    if diffs:
        raise RuntimeError(f"{cache.path}: the {split} cache was not built from this run's config ({diffs[0]}); "
                           f'refusing it: {remedy}. Differences:\n  ' + '\n  '.join(diffs))
    pending = {t: len(cache.pending_units(t)) for t in cache.teacher_names} if finished else {}
    if any(pending.values()):
        raise RuntimeError(f'{cache.path}: the dump is not finished ({pending} units pending); '
                           'run dump-teachers again to resume it')


def expected_manifest(cfg: Config, split: str, stages: list[dict], table: InstanceTable) -> dict:
    """What a cache built from `cfg` must say about itself; train-student compares against it."""
    student = model_geometry(cfg.student.config)
    teachers = {}
    for name, t in cfg.teachers.items():
        geo = model_geometry(t.config)
        teachers[name] = dict(config_sha256=sha256_file(resolve(t.config)),
                              checkpoint_sha256=sha256_file(resolve(t.checkpoint)),
                              input_size=list(geo['input_size']), split=geo['split'])
    annotations = {f'{name}.{split}': sha256_file(resolve(ds[split]['ann_file']))
                   for name, ds in cfg.datasets.items() if split in ds}
    return build_manifest(
        split=split,
        student=dict(input_size=list(student['input_size']), split=student['split']),
        teachers=teachers,
        annotations=annotations,
        views=dict(stages=[dict(num_views=int(s['num_views']), policy=s['policy']) for s in stages],
                   seed=int(cfg.seed), fields=list(VIEW_FIELDS)),  # when a stage starts is training's
        storage=dict(window=int(cfg.cache.window), tail_blocks=int(cfg.cache.tail_blocks),
                     levels=int(cfg.cache.levels), rd_lambda=float(cfg.cache.rd_lambda), lossless=cfg.cache.lossless,
                     chunk_size=int(cfg.cache.chunk_size), teacher_crops=TEACHER_CROPS),
        counts=dict(instances=len(table), **{f'instances.{n}': int((table.dataset == n).sum())
                                             for n in cfg.datasets}),
        joints=list(datasets_union(cfg.datasets).joint_names),
    )
