"""Tests of data/files.py: the one file hash."""
import hashlib

import numpy as np
import pytest

from data.files import sha256_file


def test_sha256_file_streams_and_matches_hashlib(tmp_path):
    data = np.random.default_rng(0).bytes(3 * 1000 + 17)
    path = tmp_path / 'ckpt.pth'
    path.write_bytes(data)
    assert sha256_file(path, block_size=1000) == hashlib.sha256(data).hexdigest()
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        sha256_file(tmp_path / 'nope.pth')


def test_sha256_of_a_file(tmp_path):
    p = tmp_path / 'x'
    p.write_bytes(b'abc')
    assert sha256_file(p) == 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
