"""The distillation targets of one batch, from either source, in the student's joint order: per teacher
its log-probabilities over the student's bins, the joints it covers and its outside mass. Offline they
are reconstructed from the cache's view planes; online they come from the live teachers on their own
crops of the same replayed views (teachers.targets, contract 2). Both give the same dict."""
from __future__ import annotations

import numpy as np
import torch

from cache.store import reconstruct_rows
from data.skeletons import Skeleton, model_skeleton, union_indices
from teachers.simcc import mirror_simcc
from teachers.targets import teacher_rows


def scatter_joints(rows: torch.Tensor, joints, num_joints: int) -> torch.Tensor:
    """(n, K_t, ...) rows of a teacher's joints -> (n, num_joints, ...) in the model's joint order."""
    out = rows.new_zeros((rows.shape[0], num_joints) + tuple(rows.shape[2:]))
    out[:, joints] = rows
    return out


def teacher_target(logp_x, logp_y, outside_x, outside_y, joints, num_joints):
    """One teacher's entry of the loss targets, its rows scattered into the student's joints."""
    coverage = torch.zeros(num_joints, device=logp_x.device)
    coverage[joints] = 1.0
    outside = torch.stack([outside_x, outside_y], dim=-1).float()
    return dict(logp_x=scatter_joints(logp_x, joints, num_joints),
                logp_y=scatter_joints(logp_y, joints, num_joints),
                coverage=coverage, outside_mass=scatter_joints(outside, joints, num_joints))


def mirror_target(target: dict, mirrored: torch.Tensor, flip_indices) -> dict:
    """A teacher's targets with the rows of `mirrored` items replaced by their mirror (the train-time
    flip of a cached view: teachers.simcc.mirror_simcc; the joints are the student's, so the flip
    pairs are its skeleton's). Coverage is left as is: a teacher's joints are closed under flipping."""
    if not bool(mirrored.any()):
        return target
    mx, my = mirror_simcc(target['logp_x'], target['logp_y'], flip_indices)
    m = mirrored.to(target['logp_x'].device)[:, None, None]
    idx = torch.as_tensor(np.asarray(flip_indices), device=m.device)
    return dict(target, logp_x=torch.where(m, mx, target['logp_x']), logp_y=torch.where(m, my, target['logp_y']),
                outside_mass=torch.where(m, target['outside_mass'][:, idx], target['outside_mass']))


def teacher_targets_offline(planes, rows, teacher_specs, num_joints, device, mirrored=None, flip_indices=None):
    """Cached targets of cache rows `rows` (reconstructed from the in-memory view planes); the items of
    `mirrored` ((n,) bool) get their rows mirrored (`flip_indices`: the student's joints' flip pairs)."""
    out = {}
    mirrored = None if mirrored is None else torch.as_tensor(mirrored, dtype=torch.bool)
    for name, spec in teacher_specs.items():
        x, y, ox, oy = (torch.from_numpy(a).to(device, non_blocking=True)
                        for a in reconstruct_rows(planes[name], rows))
        out[name] = teacher_target(x, y, ox, oy, spec['union_joints'], num_joints)
        if mirrored is not None:
            out[name] = mirror_target(out[name], mirrored, flip_indices)
    return out


def teacher_targets_online(models, batch, student_size, student_split, union: Skeleton, device, batch_size):
    """The same targets from the live teachers on their own crops of the batch's views (the student
    predicts `union`'s joints)."""
    out = {}
    for name, model in models.items():
        sx, sy, ox, oy = teacher_rows(model, batch[f'crop_{name}'], np.asarray(batch['box_scale']), student_size,
                                      student_split, device, batch_size)
        joints = union_indices(model_skeleton(model.skeleton_name, union), union)
        out[name] = teacher_target(sx, sy, ox, oy, joints.tolist(), union.num_joints)
    return out
