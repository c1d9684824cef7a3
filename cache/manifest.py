"""What a cache was built from: a plain JSON dict stored in the Zarr attributes, and its diff.

The stage builds a manifest from its config (teacher checkpoints by sha256, bin maps, view policy,
seed, datasets, code version); on resume or train it compares the cache's manifest with the one the
config gives now and refuses, listing every difference, instead of silently mixing targets.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from data.files import to_plain

# How teachers see a view; a cache written under another rule is refused.
TEACHER_CROPS = 'native'  # each teacher's own crop of the view box (its aspect, its input size)
BIN_MAP_RULE = ('teacher_bin = a * student_bin + b per instance, from the view box: '
                'data.geometry.teacher_to_student_bins')
# The manifest entries a cache must share with the config that reads it.
MATCH_KEYS = ('split', 'student', 'teachers', 'annotations', 'views', 'storage', 'counts', 'joints')

_HEX_DIGEST = re.compile(r'^[0-9a-f]{32,}$')


def build_manifest(**items) -> dict:
    """Plain JSON-able dict of the given items (numpy scalars/arrays, tuples and Paths converted)."""
    manifest = {k: to_plain(v, strict=True, where=f'manifest entry {k}') for k, v in items.items()}
    # round trip: what is stored in Zarr attributes is exactly what we compare later
    return json.loads(json.dumps(manifest, allow_nan=True))


def _flatten(tree, prefix: str = '') -> dict:
    if isinstance(tree, dict) and tree:
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, f'{prefix}.{k}' if prefix else str(k)))
        return out
    return {prefix: tree}


def _show(value) -> str:
    if isinstance(value, str) and _HEX_DIGEST.match(value):
        return value[:12] + '…'
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + '…'


_MISSING = object()


def _same(a, b) -> bool:
    # NaN (e.g. an unknown normaliser) equals itself here; 1 and 1.0 are the same number
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return a == b


def diff_manifest(expected: dict, found: dict, keys=None) -> list[str]:
    """Differences between the manifest the config gives (`expected`) and the cache's (`found`).

    keys: top-level (or dotted) prefixes to compare, e.g. ('teachers', 'views'); None = everything.
    Returns one line per differing leaf: "teachers.coco.checkpoint_sha256: cache has 1a2b…, config gives 3c4d…".
    """
    flat_expected, flat_found = _flatten(expected), _flatten(found)
    names = sorted(set(flat_expected) | set(flat_found))
    if keys is not None:
        prefixes = [keys] if isinstance(keys, str) else list(keys)
        names = [n for n in names if any(n == p or n.startswith(p + '.') for p in prefixes)]
    lines = []
    for name in names:
        want, have = flat_expected.get(name, _MISSING), flat_found.get(name, _MISSING)
        if want is _MISSING:
            lines.append(f'{name}: cache has {_show(have)}, config gives nothing')
        elif have is _MISSING:
            lines.append(f'{name}: cache has nothing, config gives {_show(want)}')
        elif not _same(want, have):
            lines.append(f'{name}: cache has {_show(have)}, config gives {_show(want)}')
    return lines


def code_version() -> str:
    """`git describe --always --dirty` of this repository, or 'unknown' (no git, no commit yet)."""
    root = Path(__file__).resolve().parents[1]
    try:
        result = subprocess.run(['git', 'describe', '--always', '--dirty', '--tags'], cwd=root,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    text = result.stdout.strip()
    return text if result.returncode == 0 and text else 'unknown'
