"""Checkpoints in mmpose's layout, loaded without executing pickled code.

``load_checkpoint`` always uses ``torch.load(weights_only=True)`` with an explicit allowlist of the
globals that mmengine / mmpose checkpoints carry besides tensors:

- ``collections.OrderedDict`` (state dicts, MessageHub state);
- numpy arrays, dtypes and scalars (mmpose ``meta.dataset_meta`` holds sigmas and colours as
  arrays; metrics and MessageHub values can be numpy scalars), under both the numpy 1.x
  (``numpy.core.multiarray``) and numpy 2.x (``numpy._core.multiarray``) pickle names;
- ``mmengine.logging.history_buffer.HistoryBuffer`` (the Runner's ``message_hub`` entry) and the
  ``getattr(HistoryBuffer, <statistic>)`` calls its pickled state makes, through a ``getattr``
  stand-in that permits nothing else.

Object arrays and every other global are refused with an error naming the file and the global; there
is no fallback to ``weights_only=False``.

mmengine convention for EMA (EMAHook): when saving, the hook swaps the averaged weights into
``state_dict`` and stores the raw training weights in ``ema_state_dict`` (keys ``module.*`` plus a
``steps`` counter). So ``state_dict`` *is* the EMA model (what mmpose ships and evaluates) and
``ema_state_dict`` holds the non-averaged weights. ``save_checkpoint`` writes the same layout.
"""
from __future__ import annotations

import collections
import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from data.files import atomic_write

# Statistics that mmengine's HistoryBuffer registers on itself and pickles by name.
_HISTORY_BUFFER_METHODS = frozenset({'min', 'max', 'current', 'mean'})
# numpy dtype characters allowed inside checkpoints: bool, integers, floats, complex, str, bytes,
# datetime. Not 'O' (object arrays unpickle arbitrary objects) and not 'V' (structured/void).
_NUMPY_DTYPE_CHARS = '?bhilqpBHILQPefdgFDGUSMm'
# Key prefixes stripped from state dicts: distiller wrappers and DataParallel-style wrappers.
STATE_DICT_PREFIXES = ('student.', 'model.', 'module.')


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: unreadable, disallowed content, or wrong layout."""


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` during unpickling: only HistoryBuffer statistics."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed in checkpoints')


def allowed_globals() -> list:
    """The explicit allowlist passed to torch.serialization.safe_globals."""
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    allowed: list = [collections.OrderedDict, np.ndarray, np.dtype, HistoryBuffer,
                     (_history_buffer_getattr, 'builtins.getattr')]
    allowed += sorted({type(np.dtype(c)) for c in _NUMPY_DTYPE_CHARS}, key=str)
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):  # numpy 1.x and 2.x names
        allowed += [(multiarray._reconstruct, f'{module}._reconstruct'),
                    (multiarray.scalar, f'{module}.scalar')]
    return allowed


def _allowed_names() -> set[str]:
    names = set()
    for entry in allowed_globals():
        if isinstance(entry, tuple):
            names.add(entry[1])
        else:
            names.add(f'{entry.__module__}.{entry.__qualname__}')
    return names


def _disallowed_globals(path: Path) -> list[str]:
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # legacy (non-zip) files cannot be scanned; the caller reports the load error
        return []
    allowed = _allowed_names()
    return [name for name in found if name not in allowed]


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = 'cpu') -> dict:
    """torch.load(weights_only=True) with the allowlist above; returns the checkpoint dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        offending = _disallowed_globals(path)
        if offending:
            raise CheckpointError(
                f'{path}: refusing to load; it references {", ".join(offending)}, which is not on '
                'the weights_only allowlist of teachers/checkpoints.py') from None
        reason = str(err).split('WeightsUnpickler error:')[-1].strip().splitlines()[0:1]
        raise CheckpointError(f'{path}: refusing to load ({"".join(reason) or err})') from None
    except (RuntimeError, EOFError, OSError, KeyError, IndexError, ValueError, zipfile.BadZipFile) as err:
        # a text file, a truncated download, another format: torch's unpickler says e.g. `KeyError: 101`
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f'{path}: not a readable torch checkpoint ({type(err).__name__}: {first})') from None
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f'{path}: expected a dict checkpoint, got {type(ckpt).__name__}')
    return dict(ckpt)


def _strip_prefix(sd: Mapping[str, Any]) -> collections.OrderedDict:
    """If any key starts with one of STATE_DICT_PREFIXES, keep only those keys, prefix removed
    (a distiller checkpoint holds ``student.*`` next to ``teacher.*``)."""
    for prefix in STATE_DICT_PREFIXES:
        if any(k.startswith(prefix) for k in sd):
            sd = collections.OrderedDict(
                (k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))
    return collections.OrderedDict(sd)


def state_dict_from_checkpoint(ckpt: Mapping[str, Any], use_ema: bool = True) -> collections.OrderedDict:
    """Model weights from a loaded checkpoint (mmpose/mmengine layout, or a bare state dict).

    use_ema=True: ``state_dict`` (with mmengine's EMAHook this already holds the averaged weights).
    use_ema=False: the raw training weights, i.e. ``ema_state_dict`` without ``steps`` and the
    ``module.`` prefix when the checkpoint has one, else ``state_dict``.
    Prefixes ``student.`` / ``model.`` / ``module.`` are stripped (see _strip_prefix).
    """
    if 'state_dict' in ckpt:
        sd = ckpt['state_dict']
        if not use_ema and 'ema_state_dict' in ckpt:
            sd = {k: v for k, v in ckpt['ema_state_dict'].items() if k != 'steps'}
    elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sd = ckpt
    else:
        raise CheckpointError(f'checkpoint has no state_dict (keys: {sorted(ckpt)[:8]})')
    if not isinstance(sd, Mapping):
        raise CheckpointError(f'state_dict is a {type(sd).__name__}, not a mapping')
    return _strip_prefix(sd)


def dataset_meta_from_checkpoint(ckpt: Mapping[str, Any]) -> dict | None:
    """``meta.dataset_meta`` (mmpose's keypoint metadata) or None."""
    meta = ckpt.get('meta') or {}
    return meta.get('dataset_meta') if isinstance(meta, Mapping) else None


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load with strict key and shape checks; the error names the first bad key and both shapes."""
    expected = model.state_dict()
    for key, value in expected.items():
        if key not in state_dict:
            raise ValueError(f'missing key {key!r}: model shape {tuple(value.shape)}, checkpoint '
                             f'shape: absent ({_count_problems(expected, state_dict)})')
        got = state_dict[key]
        if tuple(got.shape) != tuple(value.shape):
            raise ValueError(f'shape mismatch at {key!r}: model shape {tuple(value.shape)}, '
                             f'checkpoint shape {tuple(got.shape)}')
    for key, value in state_dict.items():
        if key not in expected:
            raise ValueError(f'unexpected key {key!r}: model shape: absent, checkpoint shape '
                             f'{tuple(value.shape)} ({_count_problems(expected, state_dict)})')
    model.load_state_dict(state_dict, strict=True)


def _count_problems(expected: Mapping, got: Mapping) -> str:
    missing = sum(k not in got for k in expected)
    unexpected = sum(k not in expected for k in got)
    return f'{missing} missing, {unexpected} unexpected keys in all'


def save_checkpoint(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor],
                    meta: Mapping[str, Any] | None = None, **extra: Any) -> Path:
    """Write ``{'meta': meta, 'state_dict': OrderedDict(cpu tensors), **extra}`` atomically
    (data.files.atomic_write: temp file in the same folder, then rename). The written pickle is
    checked against the load allowlist before the rename, so every checkpoint saved here loads with
    load_checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {'meta': dict(meta or {}),
            'state_dict': collections.OrderedDict(
                (k, v.detach().cpu()) for k, v in state_dict.items())}
    for key, value in extra.items():
        if key in ckpt:
            raise ValueError(f'extra entry {key!r} would overwrite the checkpoint layout')
        ckpt[key] = value

    def write(tmp):
        try:
            with open(tmp, 'wb') as f:
                torch.save(ckpt, f)
        except (RuntimeError, OSError) as err:  # disk full: torch says "enforce fail at inline_container.cc"
            free = shutil.disk_usage(path.parent).free
            why = 'no space left on the device' if free < (1 << 20) else f'{type(err).__name__}: {str(err)[:200]}'
            raise CheckpointError(f'{path}: could not write the checkpoint ({why})') from None
        bad = _disallowed_globals(Path(tmp))
        if bad:
            raise CheckpointError(f'{path}: meta contains objects load_checkpoint would refuse: {bad}')

    atomic_write(path, write)
    return path


def load_model(config_path: str | os.PathLike, checkpoint_path: str | os.PathLike | None = None,
               device: str | torch.device = 'cpu', use_ema: bool = True) -> nn.Module:
    """Build RTMPose from an mmpose-style config (its path, or an mmengine.Config: e.g. with
    overrides), load weights strictly, eval mode, on device."""
    from teachers.rtmpose import build_model
    model = build_model(config_path)
    if checkpoint_path is not None:
        sd = state_dict_from_checkpoint(load_checkpoint(checkpoint_path), use_ema=use_ema)
        try:
            load_state_dict_strict(model, sd)
        except ValueError as err:
            name = getattr(config_path, 'filename', config_path)  # a Config: its file, not its text
            raise CheckpointError(f'{checkpoint_path} does not fit {name}: {err}') from None
    return model.to(device).eval()


def init_backbone(model: nn.Module, checkpoint_path: str | os.PathLike, widen: bool = False) -> None:
    """mmpose's init_cfg=dict(type='Pretrained', prefix='backbone.'): the `backbone.` weights of a
    checkpoint (its EMA weights when it has them) loaded strictly into model.backbone; the head keeps
    its initialisation. widen=True: the checkpoint's backbone is the same architecture at half the
    width, widened first (widened_by_duplication)."""
    weights = state_dict_from_checkpoint(load_checkpoint(checkpoint_path))
    backbone = {k[len('backbone.'):]: v for k, v in weights.items() if k.startswith('backbone.')}
    if widen:
        try:
            backbone = widened_by_duplication(backbone, model.backbone.state_dict())
        except ValueError as err:
            raise CheckpointError(f'{checkpoint_path}: its backbone cannot be widened into the model: {err}') from None
    try:
        load_state_dict_strict(model.backbone, backbone)
    except ValueError as err:
        raise CheckpointError(f'{checkpoint_path}: its backbone does not fit the model: {err}') from None


def widened_by_duplication(weights: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> dict:
    """A network's weights widened into the same architecture at twice the width, computing the same
    function (Net2WiderNet by duplication): every channel dimension that doubles repeats each channel
    in place (c -> 2c, 2c + 1), which commutes with the channel concatenations and splits of CSP
    blocks; a weight's input dimension (dim 1) that doubles is also halved, so each duplicated pair
    of inputs sums to the original. Per-channel statistics (BatchNorm) are repeated. `target`: the
    wider model's state dict (names and shapes); the same keys, each dimension equal or doubled."""
    if set(weights) != set(target):
        raise ValueError(f'different parameter names ({len(set(weights) ^ set(target))} differ)')
    out = {}
    for name, value in weights.items():
        want = tuple(target[name].shape)
        if value.dim() != len(want) or any(m not in (n, 2 * n) for n, m in zip(value.shape, want)):
            raise ValueError(f'{name}: {tuple(value.shape)} is not {want} or half of it')
        for dim, (n, m) in enumerate(zip(value.shape, want)):
            if m == 2 * n:
                value = value.repeat_interleave(2, dim=dim)
                if dim == 1:
                    value = value / 2
        out[name] = value
    return out
