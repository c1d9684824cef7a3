"""cache.root as an S3 URL, against a local S3 (moto's server): dump, resume with repair, train from it,
and a damaged chunk object named by the one-line checksum error."""
import socket

import numpy as np
import pytest
from moto.server import ThreadedMotoServer

from cache.store import CacheChunkError, open_cache
from pipeline.run import cache_path

BUCKET = 'pose-cache'


@pytest.fixture
def s3(monkeypatch):
    """A moto S3 server on a free local port, an empty bucket, and the AWS_* settings that point s3fs at it."""
    import fsspec
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address='127.0.0.1', port=port, verbose=False)
    server.start()
    monkeypatch.setenv('AWS_ENDPOINT_URL', f'http://127.0.0.1:{port}')
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'testing')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'testing')
    monkeypatch.setenv('AWS_DEFAULT_REGION', 'us-east-1')
    fsspec.filesystem('s3').clear_instance_cache()  # no filesystem made for another endpoint is reused
    fs = fsspec.filesystem('s3')
    fs.mkdir(BUCKET)
    try:
        yield fs
    finally:
        fs.clear_instance_cache()
        server.stop()


def test_dump_resume_train_and_checksum_error_on_s3(stage_env, s3):
    from stages.dump import dump_teachers, verify_cache
    from stages.train import train
    cfg = stage_env.cfg('s3', **{'cache.root': f's3://{BUCKET}/prefix', 'views.num_views': 1})
    path = cache_path(cfg, 'train')
    assert str(path) == f's3://{BUCKET}/prefix/train.zarr'  # not resolved against the repository root
    dump_teachers(cfg, split='train', device='cpu')
    assert s3.exists(f'{BUCKET}/prefix/train.zarr/zarr.json')
    cache = open_cache(path)
    before = {t: cache.read_view_plane(t, 0) for t in cache.teacher_names}

    # resume: a unit whose marker is cleared (a killed dump) and one whose chunk object is damaged
    # are recomputed, and the rows come back the same
    cache = open_cache(path, mode='r+')
    cache.mark_pending('coco', [(0, 0)])
    key = f'{BUCKET}/prefix/train.zarr/teachers/mpii/y_values/c/0/1/0/0'
    data = bytearray(s3.cat_file(key))
    data[len(data) // 2] ^= 0xFF
    s3.pipe_file(key, bytes(data))
    assert [u for u, _ in open_cache(path).verify()['mpii'].failed.items()] == [(0, 1)]
    dump_teachers(cfg, split='train', device='cpu')
    cache = open_cache(path)
    for t in cache.teacher_names:
        assert not cache.pending_units(t)
        after = cache.read_view_plane(t, 0)
        for name, array in before[t].items():
            np.testing.assert_array_equal(after[name], array, err_msg=f'{t} {name}')

    # training reads the cache from S3
    run = train(cfg, mode='offline', epochs=1, device='cpu', num_workers=0)
    assert run is not None

    # a damaged chunk object: the one-line error names the cache, the array and the chunk
    s3.pipe_file(key, bytes(data))
    with pytest.raises(CacheChunkError) as err:
        verify_cache(cfg)
    assert str(err.value) == (f's3://{BUCKET}/prefix/train.zarr/teachers/mpii/y_values: chunk c/0/1/0/0 fails '
                              'its checksum; run dump-teachers again to recompute it')
    with pytest.raises(CacheChunkError, match='teachers/mpii/y_values: chunk c/0/1/0/0 fails its checksum'):
        open_cache(path).read_view_plane('mpii', 0)
