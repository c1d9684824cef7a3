"""How much the cache loses: KL(full || reconstructed) at distillation temperatures, argmax agreement, bytes.

The full rows come from the live teacher (mapped into student bins) on a sample of replayed views;
the reconstructed rows come from the cache for the same (teacher, view, instance). This module only
compares arrays and reads sizes from the store; it runs no network.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from cache.window import argmax_agreement, kl_at_temperature

FP16_BYTES = 2


def _summarise(pairs: Iterable[tuple[np.ndarray, np.ndarray]], temperatures: Sequence[float]) -> dict:
    kls = {float(t): [] for t in temperatures}
    agree = []
    for full, recon in pairs:
        full, recon = np.asarray(full), np.asarray(recon)
        if full.shape != recon.shape:
            raise ValueError(f'full rows {full.shape} and reconstructed rows {recon.shape} differ in shape')
        for t in kls:
            kls[t].append(kl_at_temperature(full, recon, t).ravel())
        agree.append(argmax_agreement(full, recon).ravel())
    agree = np.concatenate(agree) if agree else np.zeros(0, bool)
    report = {'rows': int(agree.size), 'argmax_agreement': float(agree.mean()) if agree.size else float('nan'),
              'kl': {}}
    for t, parts in kls.items():
        values = np.concatenate(parts) if parts else np.zeros(0)
        report['kl'][str(t)] = {'mean': float(values.mean()) if values.size else float('nan'),
                                'max': float(values.max()) if values.size else float('nan')}
    return report


def fidelity_report(cache, samples: Mapping[str, Iterable | Callable[[], Iterable]],
                    temperatures: Sequence[float]) -> dict:
    """Per teacher: KL(full || reconstructed) mean/max at each temperature, argmax agreement, bytes per row.

    samples: teacher name -> iterable of (full_logits (..., B), reconstructed_logp (..., B)) pairs
             (x and y rows may be given as separate pairs), or a zero-argument callable returning one.
    bytes_per_row: stored bytes of the teacher's row arrays / written instance-view rows (one row =
             all K joints, x and y); raw_fp16_bytes_per_row: the same rows as full fp16 (K * (Bx + By) * 2).
    """
    report = {'temperatures': [float(t) for t in temperatures], 'teachers': {}}
    for name in cache.teacher_names:
        spec = cache.teacher_spec(name)
        rows = cache.written_rows(name)
        entry = {'written_rows': rows,
                 'bytes_per_row': cache.stored_nbytes(name) / rows if rows else float('nan'),
                 'raw_fp16_bytes_per_row': spec['num_joints'] * (spec['bins_x'] + spec['bins_y']) * FP16_BYTES,
                 'window_x': spec['window_x'], 'window_y': spec['window_y'], 'lossless': spec['lossless'],
                 'tail_blocks_x': spec.get('tail_blocks_x'), 'tail_blocks_y': spec.get('tail_blocks_y'),
                 'levels': spec.get('levels'), 'rd_lambda': spec.get('rd_lambda')}
        if name in samples:
            pairs = samples[name]() if callable(samples[name]) else samples[name]
            entry.update(_summarise(pairs, temperatures))
        report['teachers'][name] = entry
    return report
