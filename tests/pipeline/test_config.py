import pytest

from pipeline.config import ConfigError, load_config, resolve

CONFIGS = ['pipeline/configs/demo_synthetic.py', 'pipeline/configs/coco_mpii_rtmpose-s.py']


@pytest.mark.parametrize('path', CONFIGS)
def test_shipped_configs_load_and_name_existing_model_configs(path):
    cfg = load_config(resolve(path))
    for t in cfg.teachers.values():
        assert resolve(t.config).is_file(), t.config
    assert resolve(cfg.student.config).is_file()
    assert set(cfg.train.loss_weights) == {'gt', 'coco', 'mpii'}


def test_overrides_are_applied():
    cfg = load_config(resolve(CONFIGS[0]), {'train.epochs': 3, 'views.num_views': 2})
    assert cfg.train.epochs == 3 and cfg.views.num_views == 2


def test_missing_key_is_named(tmp_path):
    p = tmp_path / 'bad.py'
    p.write_text("name='x'\nseed=0\n")
    with pytest.raises(ConfigError, match='work_dir') as e:
        load_config(p)
    assert str(p) in str(e.value)


def test_bad_dataset_type_is_named(tmp_path):
    src = resolve(CONFIGS[0]).read_text().replace("type='mpii'", "type='lsp'")
    p = tmp_path / 'cfg.py'
    p.write_text(src)
    with pytest.raises(ConfigError, match="datasets.mpii.type"):
        load_config(p)


def test_missing_file():
    with pytest.raises(ConfigError, match='not found'):
        load_config('nope/none.py')
