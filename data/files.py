"""Writing files, for every layer: atomically (write to a temporary name beside the target, then
rename, so a killed process never leaves a half-written file under the real name), and plain values
(what JSON, Zarr attributes, checkpoint meta and mmengine configs can hold); the one file hash."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call write(tmp_path) on a temporary file in the target's folder, then rename it to `path`.
    The temporary name keeps the suffix (h5py, onnx and torch look at it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp' + path.suffix)
    os.close(fd)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600: a report or a model gets the usual permissions
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def to_plain(value: Any, strict: bool = False, where: str = 'value') -> Any:
    """Config dicts (mmengine ConfigDict / Config), numpy and torch values, tuples and paths -> plain
    Python: dict, list, str, int, float, bool, None (dict keys as they are, str() of ints when strict).
    Anything else is kept as it is, or with strict=True (JSON files) refused naming where it is."""
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if hasattr(value, 'to_dict') and not isinstance(value, Mapping):  # an mmengine Config
        value = value.to_dict()
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if strict and not isinstance(k, (str, int)):
                raise TypeError(f'{where}: key {k!r} is not a string')
            out[str(k) if strict else k] = to_plain(v, strict, f'{where}.{k}')
        return out
    if isinstance(value, (list, tuple)):
        return [to_plain(v, strict, f'{where}[{i}]') for i, v in enumerate(value)]
    if isinstance(value, os.PathLike):
        return str(value)
    if hasattr(value, 'tolist'):  # numpy arrays and scalars, torch tensors
        return to_plain(value.tolist(), strict, where)
    if strict:
        raise TypeError(f'{where} has type {type(value).__name__}, which is not JSON-able')
    return value


def sha256_file(path, block_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in blocks (checkpoints are hundreds of MB)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'cannot hash {path}: no such file')
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(block_size), b''):
            digest.update(block)
    return digest.hexdigest()
