from pathlib import Path

import numpy as np
import pytest

from cache.manifest import build_manifest, code_version, diff_manifest


def test_build_manifest_makes_plain_json():
    manifest = build_manifest(seed=np.int64(3), size=(192, 256), root=Path('/a/b'),
                              teachers={'coco': {'split': np.float32(2.0), 'joints': np.arange(3)}},
                              flag=np.bool_(True))
    assert manifest == {'seed': 3, 'size': [192, 256], 'root': '/a/b',
                        'teachers': {'coco': {'split': 2.0, 'joints': [0, 1, 2]}}, 'flag': True}
    assert type(manifest['seed']) is int and type(manifest['flag']) is bool
    with pytest.raises(TypeError, match=r'teachers\.coco\.fn'):
        build_manifest(teachers={'coco': {'fn': object()}})


def test_diff_manifest_names_each_difference():
    expected = build_manifest(teachers={'coco': {'checkpoint_sha256': 'd' * 64, 'split': 2.0}},
                              views={'n': 8}, code='v2', norm=float('nan'))
    found = build_manifest(teachers={'coco': {'checkpoint_sha256': 'a' * 64, 'split': 2.0},
                                     'mpii': {'split': 2.0}},
                           views={'n': 8}, code='v1', norm=float('nan'))
    lines = diff_manifest(expected, found)
    assert lines == ['code: cache has "v1", config gives "v2"',
                     f'teachers.coco.checkpoint_sha256: cache has {"a" * 12}…, config gives {"d" * 12}…',
                     'teachers.mpii.split: cache has 2.0, config gives nothing']
    assert diff_manifest(expected, found, keys=('views', 'norm')) == []
    assert diff_manifest(expected, found, keys='teachers.coco') == [lines[1]]
    assert diff_manifest(found, found) == []


def test_code_version_is_a_string():
    version = code_version()
    assert isinstance(version, str) and version
