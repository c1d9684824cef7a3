"""Shipped teacher checkpoints: a tracked folder of mmpose-layout checkpoints plus `manifest.json`
(sha256 and size of each file, the model config it fits, how it was made, its validation numbers).

The demo uses its teachers the way a real run uses released RTMPose checkpoints: it never trains them,
and it refuses a file that is missing or differs from the manifest, naming the file and the command
that rebuilds it.
"""
from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Mapping

import torch

from data.files import sha256_file

MANIFEST = 'manifest.json'
REBUILD = 'make demo-teachers'


class ShippedTeacherError(RuntimeError):
    pass


def read_manifest(folder: str | os.PathLike) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ShippedTeacherError(f'{path}: missing; rebuild the shipped teachers with `{REBUILD}`')
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ShippedTeacherError(f'{path}: not valid JSON ({err}); rebuild with `{REBUILD}`') from None
    if not isinstance(manifest.get('files'), dict):
        raise ShippedTeacherError(f'{path}: no "files" table; rebuild with `{REBUILD}`')
    return manifest


def verify_shipped(checkpoint: str | os.PathLike) -> dict:
    """Check one shipped checkpoint against the manifest in its folder; returns its manifest entry.
    Raises ShippedTeacherError naming the file when it is missing, unlisted or altered."""
    path = Path(checkpoint)
    manifest = read_manifest(path.parent)
    entry = manifest['files'].get(path.name)
    if entry is None:
        raise ShippedTeacherError(f'{path}: not listed in {path.parent / MANIFEST}; rebuild with `{REBUILD}`')
    if not path.is_file():
        raise ShippedTeacherError(f'{path}: missing; rebuild the shipped teachers with `{REBUILD}`')
    got = sha256_file(path)
    if got != entry['sha256']:
        raise ShippedTeacherError(f'{path}: sha256 {got[:12]}... differs from its manifest '
                                  f'({entry["sha256"][:12]}...): the file was altered; restore it '
                                  f'(git checkout) or rebuild with `{REBUILD}`')
    return entry


def half_precision(state_dict: Mapping[str, torch.Tensor]) -> collections.OrderedDict:
    """fp16 copy of the floating-point tensors (weights, BN statistics); integer buffers unchanged.
    Loading casts them back into the model's float32 parameters."""
    return collections.OrderedDict(
        (k, v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()) for k, v in state_dict.items())

