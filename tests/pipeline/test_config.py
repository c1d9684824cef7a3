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


def test_train_keys_are_checked_with_the_closest_name_suggested():
    demo = resolve('pipeline/configs/demo_synthetic.py')
    with pytest.raises(ConfigError, match=r"train\.overlpa: unknown key; did you mean 'overlap'\?"):
        load_config(demo, {'train.overlpa': 'mean'})
    with pytest.raises(ConfigError, match=r"teacher_train\.epoch: unknown key; did you mean 'epochs'\?"):
        load_config(demo, {'teacher_train.epoch': 3})
    with pytest.raises(ConfigError, match=r'train\.epochs must be int'):
        load_config(demo, {'train.epochs': 'ten'})
    with pytest.raises(ConfigError, match=r'train\.overlap must be one of'):
        load_config(demo, {'train.overlap': 'median'})
    with pytest.raises(ConfigError, match=r'train\.base_lr must be > 0'):
        load_config(demo, {'train.base_lr': 0.0})


def test_train_defaults_are_written_once_and_filled_in(tmp_path):
    from pipeline.config import TRAIN_SCHEMA
    cfg = load_config(resolve('pipeline/configs/demo_synthetic.py'))
    assert set(cfg.train) == set(TRAIN_SCHEMA)
    p = tmp_path / 'minimal.py'
    p.write_text(f"_base_ = ['{resolve('pipeline/configs/demo_synthetic.py')}']\n"
                 "train = dict(_delete_=True, epochs=2, batch_size=8, base_lr=1e-3,\n"
                 "             loss_weights=dict(gt=1.0, coco=0.5, mpii=0.5))\n")
    cfg = load_config(p)
    assert cfg.train.overlap == TRAIN_SCHEMA['overlap'][1] == 'confidence'
    assert cfg.train.gt_reduction == 'batch_mean' and cfg.train.photometric == 'final'


def test_loss_weights_name_exactly_the_teachers():
    demo = resolve('pipeline/configs/demo_synthetic.py')
    with pytest.raises(ConfigError, match=r"\['halpe'\] name no teacher"):
        load_config(demo, {'train.loss_weights.halpe': 0.1})
    with pytest.raises(ConfigError, match=r"no weight for \['aic'\]"):
        load_config(demo, {'teachers.aic': dict(config='x.py', checkpoint='y.pth', dataset='coco')})


def test_pretrain_models_are_checked_and_found_by_name():
    from pipeline.config import supervised_model
    teachers_cfg = resolve('pipeline/configs/demo_teachers.py')
    cfg = load_config(teachers_cfg)
    assert supervised_model(cfg, 'student_init').dataset == 'coco'  # a pretrain model
    assert supervised_model(cfg, 'mpii').init_backbone  # a teacher
    with pytest.raises(ConfigError, match=r"--as-teacher halpe: .* \['coco', 'mpii', 'student_init'\]"):
        supervised_model(cfg, 'halpe')
    with pytest.raises(ConfigError, match=r"pretrain\.extra needs 'dataset'"):
        load_config(teachers_cfg, {'pretrain.extra': dict(config='x.py', checkpoint='y.pth')})
    with pytest.raises(ConfigError, match=r"pretrain\.student_init\.train\.epoch: unknown key"):
        load_config(teachers_cfg, {'pretrain.student_init.train': dict(epoch=3)})
    with pytest.raises(ConfigError, match=r"teachers\.mpii\.dataset 'mpii2' names no dataset of the config"):
        load_config(teachers_cfg, {'teachers.mpii.dataset': 'mpii2'})
    with pytest.raises(ConfigError, match=r"teachers\.mpii\.widen_backbone needs init_backbone"):
        load_config(teachers_cfg, {'teachers.mpii.init_backbone': None, 'teachers.mpii.widen_backbone': True})


@pytest.mark.parametrize('key, message', [
    ('cache.windw', r"cache\.windw: unknown key; did you mean 'window'\?"),
    ('views.num_view', r"views\.num_view: unknown key; did you mean 'num_views'\?"),
    ('dump_stage.batchsize', r"dump_stage\.batchsize: unknown key; did you mean 'batch_size'\?"),
    ('student.init_backbon', r"student\.init_backbon: unknown key; did you mean 'init_backbone'\?"),
    ('teachers.coco.chekpoint', r"teachers\.coco\.chekpoint: unknown key; did you mean 'checkpoint'\?"),
    ('datasets.mpii.val.head_box_file', r"datasets\.mpii\.val\.head_box_file: unknown key; did you mean "
                                        r"'head_boxes_file'\?"),
    ('dump_stages', r"dump_stages: unknown key; did you mean 'dump_stage'\?"),
    ('views.polcy', r"views\.polcy: unknown key; did you mean 'policy'\?"),
    ('evaluation.flip_tset', r"evaluation\.flip_tset: unknown key; did you mean 'flip_test'\?"),
    ('train.flip_view', r"train\.flip_view: unknown key; did you mean 'flip_views'\?"),
])
def test_every_section_refuses_unknown_keys_with_the_closest_name(key, message):
    """A misspelt key anywhere is an error, not a silent fallback to a default."""
    with pytest.raises(ConfigError, match=message):
        load_config(resolve(CONFIGS[0]), {key: 1})


def test_run_folder_configs_load_again():
    """export-report reloads the config a run dumped (with its config_path and _-variables)."""
    import tempfile
    from pathlib import Path
    cfg = load_config(resolve(CONFIGS[0]))
    with tempfile.TemporaryDirectory() as d:
        cfg.dump(str(Path(d) / 'pipeline_config.py'))
        assert load_config(Path(d) / 'pipeline_config.py').cache.window == cfg.cache.window


@pytest.mark.parametrize('overrides, message', [
    ({'views.policy': 'mian'}, r"views\.policy must be one of \('main', 'final', 'wide', 'none'\), got 'mian'"),
    ({'train.photometric': 'mian'}, r"train\.photometric must be one of \('main', 'final', 'none', True, False, None\)"),
    ({'stage2': dict(switch_epoch=20, num_views=2, policy='final', photometric='final')},
     r'stage2\.switch_epoch must be in \(0, train\.epochs = 20\), got 20'),
    ({'stage2': dict(switch_epoch=5, num_views=2, policy='fina', photometric='final')}, r'stage2\.policy must be one of'),
    ({'stage2': dict(switch_epoch=5, num_views=2, policy='final')}, r'stage2\.photometric is required'),
    ({'stage2': dict(switch_epoch=5, num_views=0, policy='final', photometric=None)}, r'stage2\.num_views must be > 0'),
    ({'evaluation.save_best': 'coco/APP'}, r"evaluation\.save_best must be DATASET/METRIC .* got 'coco/APP'"),
    ({'train.auto_scale_lr': 0}, r'train\.auto_scale_lr must be > 0'),
])
def test_enumerated_values_and_new_sections_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(resolve('pipeline/configs/demo_synthetic.py'), overrides)


@pytest.mark.parametrize('overrides, message', [
    ({'views.polcy': 'main'}, r"views\.polcy: unknown key; did you mean 'policy'\?"),
    ({'train.photometric': 'mian'}, r"train\.photometric must be one of .*got 'mian'"),
    ({'pretrain.student_init.views.polcy': 'none'},
     r"pretrain\.student_init\.views\.polcy: unknown key; did you mean 'policy'\?"),
    ({'pretrain.student_init.views.policy': 'nnoe'},
     r"pretrain\.student_init\.views\.policy must be one of \('main', 'final', 'wide', 'none'\), got 'nnoe'"),
    ({'pretrain.student_init.view': None}, r"pretrain\.student_init\.view: unknown key; did you mean 'views'\?"),
    ({'synthetic.image': 10}, r"synthetic\.image: unknown key; did you mean 'images'\?"),
    ({'datasets.coco.truth.vall': 'x.npz'}, r"datasets\.coco\.truth\.vall: unknown key; did you mean 'val'\?"),
    ({'datasets.coco.val.det_score_thr': 'high'}, r"datasets\.coco\.val\.det_score_thr must be float"),
    ({'dump_stage.num_workers': 1.5}, r'dump_stage\.num_workers must be int'),
    ({'cache.chunk_size': 0}, r'cache\.chunk_size must be > 0'),
    ({'cache.lossless': 'yes'}, r'cache\.lossless must be bool'),
    ({'strict_input': 1}, r'strict_input must be bool'),
    ({'teachers.coco.widen_backbone': True, 'teachers.coco.init_backbone': None},
     r'teachers\.coco\.widen_backbone needs init_backbone'),
])
def test_every_section_is_validated_nested_views_included(overrides, message):
    """The demo teachers' config (it has every section, pretrain with its own views): a misspelt key
    is refused by name, an enumerated value with the allowed list, a wrong type with the type."""
    with pytest.raises(ConfigError, match=message):
        load_config(resolve('pipeline/configs/demo_teachers.py'), overrides)


def test_every_section_is_filled_from_its_schema():
    """After load_config each section holds every key of its schema (the defaults written once, in
    pipeline/config.py), so no stage reads a default of its own."""
    from pipeline import config as c
    cfg = load_config(resolve('pipeline/configs/demo_teachers.py'))
    assert set(cfg.cache) == set(c.CACHE_SCHEMA) and set(cfg.dump_stage) == set(c.DUMP_STAGE_SCHEMA)
    assert set(cfg.student) == set(c.STUDENT_SCHEMA) and set(cfg.synthetic) == set(c.SYNTHETIC_SCHEMA)
    assert set(cfg.evaluation) == set(c.EVALUATION_SCHEMA) and set(cfg.views) == set(c.VIEWS_SCHEMA)
    for t in cfg.teachers.values():
        assert set(t) == set(c.TEACHER_SCHEMA)
    p = cfg.pretrain.student_init
    assert set(p) == set(c.PRETRAIN_SCHEMA) and set(p.views) == set(c.VIEWS_SCHEMA)
    for ds in cfg.datasets.values():
        assert set(ds) == set(c.DATASET_SCHEMA)
        for part in ('train', 'val', 'truth'):
            assert set(ds[part]) == set(c.DATASET_PART_SCHEMAS[part])
    assert cfg.datasets.coco.val.det_score_thr == c.DATASET_PART_SCHEMAS['val']['det_score_thr'][1] == 0.0
    assert cfg.strict_input is False and cfg.stage2 is None
    demo = load_config(resolve(CONFIGS[0]))
    assert demo.pretrain == {} and demo.teacher_train == {}  # absent sections: present, empty


def test_a_dataset_without_a_val_split_stays_without_one():
    cfg = load_config(resolve(CONFIGS[0]), {'datasets.mpii': dict(
        _delete_=True, type='mpii', train=dict(ann_file='a.json', image_root='img'))})
    assert 'val' not in cfg.datasets.mpii and cfg.datasets.mpii.truth.val is None
