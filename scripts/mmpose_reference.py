"""Reference side of the mmpose parity checks and benchmarks. Runs INSIDE .venv-mmpose
(mmpose 1.3.2, mmcv 2.1.0, mmdet 3.3.0), never in the product environment.

    .venv-mmpose/bin/python scripts/mmpose_reference.py parity --out DIR [--variants t,s,m,...]
    .venv-mmpose/bin/python scripts/mmpose_reference.py golden --out tests/parity/golden
    .venv-mmpose/bin/python scripts/mmpose_reference.py serve      # benchmark worker (JSON lines)
    .venv-mmpose/bin/python scripts/mmpose_reference.py signature  # state-dict signature of m

parity: for each variant, mmpose builds its OWN packaged config (site-packages/mmpose/.mim/configs)
with head.out_channels set to the keypoint count of our config (the only edit), or our config file
itself for the demo variants that mmpose does not ship. Weights are random (fixed seed) with
randomised BatchNorm statistics so BN is exercised in eval mode. The checkpoint is written with
mmengine's own save_checkpoint (for variant t in the full Runner layout: message_hub, optimizer,
param_schedulers, EMAHook-swapped ema_state_dict), loaded back into the mmpose model with mmengine's
load_checkpoint, and run in eval mode fp32 on a fixed uint8 BGR batch through mmpose's
PoseDataPreprocessor. SimCCLabel encode/decode results on fixed keypoints go to codec_<name>.npz.
Everything lands in DIR with a manifest.json that tests/parity/test_mmpose_parity.py reads.

golden: the same comparisons made storable (tests/parity/golden, read by tests/parity/test_golden.py
without mmpose). Weights, images and codec inputs are drawn from seeded generators keyed by name
(tests/parity/seeded.py, imported by both sides), so only mmpose's outputs are stored: its
normalisation as a per-channel lookup table, SimCC outputs, SimCCLabel encodings and decodings, and
the state-dict signature.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.parity import seeded  # noqa: E402  (numpy only: safe in this environment)

OUR_CONFIGS = ROOT / 'pipeline' / 'configs' / 'models'
SEED = 20240229

# name -> (mmpose packaged config relative to .mim/configs, or None = build our config in mmpose;
#          our config file name)
VARIANTS = {
    't': ('body_2d_keypoint/rtmpose/coco/rtmpose-t_8xb256-420e_coco-256x192.py',
          'rtmpose-t_union21_256x192.py'),
    's': ('body_2d_keypoint/rtmpose/coco/rtmpose-s_8xb256-420e_coco-256x192.py',
          'rtmpose-s_union21_256x192.py'),
    'm': ('body_2d_keypoint/rtmpose/coco/rtmpose-m_8xb256-420e_coco-256x192.py',
          'rtmpose-m_coco17_256x192.py'),
    'm_mpii': ('body_2d_keypoint/rtmpose/mpii/rtmpose-m_8xb64-210e_mpii-256x256.py',
               'rtmpose-m_mpii16_256x256.py'),
    'demo_union21': (None, 'rtmpose-demo_union21_128x96.py'),
}
FULL_RUNNER_LAYOUT = {'t'}  # variants saved with every entry mmengine's Runner writes


def import_mmpose():
    from mmengine.registry import init_default_scope
    init_default_scope('mmpose')
    import mmpose.codecs  # noqa: F401
    import mmpose.models  # noqa: F401
    import mmpose
    return mmpose


def mmpose_config_path(rel: str | None, ours: str) -> Path:
    if rel is None:
        return OUR_CONFIGS / ours
    mmpose = import_mmpose()
    return Path(mmpose.__file__).parent / '.mim' / 'configs' / rel


def load_variant_config(name: str):
    """(mmengine Config used by mmpose, our Config) for a variant."""
    from mmengine.config import Config
    rel, ours = VARIANTS[name]
    ref = Config.fromfile(str(mmpose_config_path(rel, ours)))
    our = Config.fromfile(str(OUR_CONFIGS / ours))
    ref.model.head.out_channels = our.model.head.out_channels  # the only edit to mmpose's config
    ref.model.backbone.pop('init_cfg', None)  # never download pretrained weights
    return ref, our


def build_reference(cfg):
    import_mmpose()
    from mmpose.models import build_pose_estimator
    model = build_pose_estimator(cfg.model)
    return model.eval()


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Construction already drew random conv/linear weights under the seed; here BN affine and
    running statistics, ScaleNorm gains and residual scales move away from their identity values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) * 1.5 + 0.5)
        for name, p in model.named_parameters():
            if name.endswith('.g') or name.endswith('res_scale.scale'):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)


def state_dict_signature(state_dict) -> dict:
    lines = sorted(f'{k} {tuple(v.shape)}' for k, v in state_dict.items())
    return dict(num_keys=len(lines), sha256=hashlib.sha256('\n'.join(lines).encode()).hexdigest())


def dataset_meta_like_mmpose(skeleton_file: str = 'coco.py') -> dict:
    """The numpy-bearing part of mmpose's parse_pose_metainfo output (without importing
    mmpose.datasets), so the checkpoint meta carries arrays exactly as a trained model's does."""
    from mmengine.config import Config
    mmpose = import_mmpose()
    path = Path(mmpose.__file__).parent / '.mim' / 'configs' / '_base_' / 'datasets' / skeleton_file
    info = Config.fromfile(str(path)).dataset_info
    kp = info['keypoint_info']
    return dict(
        dataset_name=info['dataset_name'], num_keypoints=len(kp),
        keypoint_id2name={i: kp[i]['name'] for i in kp},
        flip_indices=[0] * len(kp),
        keypoint_colors=np.array([kp[i]['color'] for i in kp], dtype=np.uint8),
        dataset_keypoint_weights=np.array(info['joint_weights'], dtype=np.float32),
        sigmas=np.array(info['sigmas'], dtype=np.float32))


def runner_extras(model: torch.nn.Module, seed: int) -> dict:
    """message_hub, optimizer, param_schedulers and the EMAHook swap, made by mmengine's own
    classes, as Runner.save_checkpoint + EMAHook.before_save_checkpoint write them."""
    from mmengine.hooks import EMAHook
    from mmengine.logging import MessageHub
    from mmengine.model import ExponentialMovingAverage
    from mmengine.optim import CosineAnnealingLR, LinearLR, OptimWrapper
    hub = MessageHub.get_instance(f'reference_{seed}')
    for step in range(3):
        hub.update_scalar('train/loss', 1.0 / (step + 1))
        hub.update_scalar('train/lr', np.float64(4e-3))
    hub.update_info('epoch', 1)
    hub.update_info('iter', 3)
    hub.update_info('coco/AP', np.float64(0.5))
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.05))
    schedulers = [LinearLR(optim, start_factor=1e-5, by_epoch=False, begin=0, end=1000),
                  CosineAnnealingLR(optim, T_max=10, by_epoch=False, begin=10, end=20)]
    ema = ExponentialMovingAverage(model, momentum=0.5, update_buffers=True)
    ema.update_parameters(model)  # the first update copies the weights
    model.train()
    gen = torch.Generator().manual_seed(seed + 1)
    size = model.head.input_size
    x = torch.randn((2, 3, size[1], size[0]), generator=gen)
    pred_x, pred_y = model._forward(x)
    optim.update_params(pred_x.square().mean() + pred_y.square().mean())
    for s in schedulers:
        s.step()
    model.eval()
    ema.update_parameters(model)  # now the average of the two: differs from the raw weights
    ckpt = {'message_hub': hub.state_dict(), 'optimizer': optim.state_dict(),
            'param_schedulers': [s.state_dict() for s in schedulers],
            'ema_state_dict': ema.state_dict(),
            'state_dict': model.state_dict()}
    EMAHook._swap_ema_state_dict(EMAHook.__new__(EMAHook), ckpt)  # mmengine's own swap code
    return ckpt


def codec_reference(codec_cfg: dict, seed: int) -> dict:
    from mmpose.codecs import SimCCLabel
    cfg = dict(codec_cfg)
    cfg.pop('type')
    codec = SimCCLabel(**cfg)
    rng = np.random.default_rng(seed)
    w, h = cfg['input_size']
    keypoints = rng.uniform([-25, -25], [w + 25, h + 25], size=(4, 21, 2)).astype(np.float32)
    keypoints[0, :3] = [[-100, 10], [10, h + 200], [w - 0.25, h - 0.75]]
    visible = rng.choice(np.array([0, 1, 1, 1, 0.3], np.float32), size=(4, 21))
    enc = codec.encode(keypoints, visible)
    simcc_x = rng.normal(size=(4, 21, int(w * 2))).astype(np.float32)
    simcc_y = rng.normal(size=(4, 21, int(h * 2))).astype(np.float32)
    simcc_x[0, 0] = -np.abs(simcc_x[0, 0]) - 0.01
    dec_kp, dec_sc = codec.decode(simcc_x.copy(), simcc_y.copy())
    lab_kp, lab_sc = codec.decode(enc['keypoint_x_labels'].copy(), enc['keypoint_y_labels'].copy())
    return dict(keypoints=keypoints, visible=visible, x_labels=enc['keypoint_x_labels'],
                y_labels=enc['keypoint_y_labels'], weights=enc['keypoint_weights'],
                simcc_x=simcc_x, simcc_y=simcc_y, decoded_keypoints=dec_kp, decoded_scores=dec_sc,
                label_keypoints=lab_kp, label_scores=lab_sc)


def run_parity(out: Path, names: list[str]) -> None:
    from mmengine.runner.checkpoint import load_state_dict, save_checkpoint, weights_to_cpu
    out.mkdir(parents=True, exist_ok=True)
    mmpose = import_mmpose()
    import mmcv
    import mmdet
    import mmengine
    manifest = {'versions': {'mmpose': mmpose.__version__, 'mmcv': mmcv.__version__,
                             'mmdet': mmdet.__version__, 'mmengine': mmengine.__version__,
                             'torch': torch.__version__, 'numpy': np.__version__},
                'seed': SEED, 'variants': {}}
    for index, name in enumerate(names):
        t0 = time.perf_counter()
        seed = SEED + index
        ref_cfg, our_cfg = load_variant_config(name)
        torch.manual_seed(seed)
        model = build_reference(ref_cfg)
        randomise(model, seed)
        dataset_meta = dataset_meta_like_mmpose('mpii.py' if 'mpii' in name else 'coco.py')
        meta = {'dataset_meta': dataset_meta, 'seed': seed, 'experiment_name': f'parity_{name}',
                'mmengine_version': mmengine.__version__, 'cfg': ref_cfg.pretty_text}
        if name in FULL_RUNNER_LAYOUT:
            ckpt = runner_extras(model, seed)
            ckpt['meta'] = meta
            ckpt['state_dict'] = weights_to_cpu(ckpt['state_dict'])
        else:
            ckpt = {'meta': meta, 'state_dict': weights_to_cpu(model.state_dict())}
        ckpt_path = out / f'{name}.pth'
        save_checkpoint(ckpt, str(ckpt_path))
        # Load the file back the way mmengine does (state_dict, strict). mmengine 0.10.7's
        # load_checkpoint calls torch.load with torch's default weights_only=True, which refuses
        # its own Runner layout (HistoryBuffer) on torch >= 2.6, so the trusted file we just wrote
        # is read with weights_only=False and handed to mmengine's load_state_dict.
        saved = torch.load(ckpt_path, map_location='cpu', weights_only=False)
        load_state_dict(model, saved['state_dict'], strict=True)
        model.eval()

        w, h = ref_cfg.codec.input_size
        gen = torch.Generator().manual_seed(seed + 2)
        images = torch.randint(0, 256, (2, h, w, 3), generator=gen, dtype=torch.uint8)  # BGR HWC
        # PoseDataPreprocessor normalises in its parent, mmengine's ImgDataPreprocessor.forward
        # (the subclass only adds data-sample metainfo, which this batch does not have).
        from mmengine.model import ImgDataPreprocessor
        batch = ImgDataPreprocessor.forward(
            model.data_preprocessor,
            {'inputs': [img.permute(2, 0, 1).contiguous() for img in images]}, training=False)
        with torch.no_grad():
            simcc_x, simcc_y = model(batch['inputs'], None, mode='tensor')
        np.savez(out / f'{name}.npz', images=images.numpy(), inputs=batch['inputs'].numpy(),
                 simcc_x=simcc_x.numpy(), simcc_y=simcc_y.numpy())
        codec_cfg = ref_cfg.codec.to_dict() if hasattr(ref_cfg.codec, 'to_dict') else dict(ref_cfg.codec)
        np.savez(out / f'codec_{name}.npz', **codec_reference(codec_cfg, seed + 3))
        manifest['variants'][name] = dict(
            mmpose_config=str(mmpose_config_path(*VARIANTS[name])), our_config=VARIANTS[name][1],
            out_channels=int(ref_cfg.model.head.out_channels), checkpoint=ckpt_path.name,
            io=f'{name}.npz', codec=f'codec_{name}.npz', runner_layout=name in FULL_RUNNER_LAYOUT,
            checkpoint_keys=sorted(ckpt), signature=state_dict_signature(model.state_dict()),
            output_abs_max=float(max(simcc_x.abs().max(), simcc_y.abs().max())),
            seconds=round(time.perf_counter() - t0, 2))
        print(f'{name}: {manifest["variants"][name]["signature"]} '
              f'{manifest["variants"][name]["seconds"]} s', flush=True)
    tmp = out / 'manifest.json.tmp'
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / 'manifest.json')


def mmpose_preprocess(model, images: np.ndarray) -> torch.Tensor:
    """uint8 BGR (N, H, W, 3) through the model's PoseDataPreprocessor, which normalises in its
    parent, mmengine's ImgDataPreprocessor.forward (the subclass only adds data-sample metainfo)."""
    from mmengine.model import ImgDataPreprocessor
    batch = ImgDataPreprocessor.forward(
        model.data_preprocessor,
        {'inputs': [torch.from_numpy(img).permute(2, 0, 1).contiguous() for img in images]}, training=False)
    return batch['inputs']


def run_golden(out: Path, names: list[str]) -> None:
    from mmpose.codecs import SimCCLabel
    out.mkdir(parents=True, exist_ok=True)
    mmpose = import_mmpose()
    import mmcv
    import mmengine
    manifest = {'versions': {'mmpose': mmpose.__version__, 'mmcv': mmcv.__version__,
                             'mmengine': mmengine.__version__, 'torch': torch.__version__,
                             'numpy': np.__version__},
                'seed': SEED, 'batch': 2, 'variants': {}}
    for name in names:
        ref_cfg, our_cfg = load_variant_config(name)
        model = build_reference(ref_cfg)
        state = model.state_dict()
        drawn = seeded.weights({k: tuple(v.shape) for k, v in state.items()}, SEED)
        model.load_state_dict({k: torch.from_numpy(drawn[k]) if k in drawn else v for k, v in state.items()},
                              strict=True)
        model.eval()
        w, h = ref_cfg.codec.input_size
        lut = mmpose_preprocess(model, seeded.gray_ramp())[0, :, 0, :].numpy()  # (3, 256)
        inputs = mmpose_preprocess(model, seeded.images(SEED, manifest['batch'], h, w))
        with torch.no_grad():
            simcc_x, simcc_y = model(inputs, None, mode='tensor')
        codec_cfg = ref_cfg.codec.to_dict() if hasattr(ref_cfg.codec, 'to_dict') else dict(ref_cfg.codec)
        codec_cfg.pop('type')
        codec = SimCCLabel(**codec_cfg)
        k = int(ref_cfg.model.head.out_channels)
        c = seeded.codec_inputs(SEED, k, w, h, codec_cfg['simcc_split_ratio'])
        enc = codec.encode(c['keypoints'], c['visible'])
        dec_kp, dec_sc = codec.decode(c['simcc_x'].copy(), c['simcc_y'].copy())
        lab_kp, lab_sc = codec.decode(enc['keypoint_x_labels'].copy(), enc['keypoint_y_labels'].copy())
        tmp = out / f'{name}.tmp.npz'
        np.savez_compressed(tmp, lut=lut, simcc_x=simcc_x.numpy(), simcc_y=simcc_y.numpy(),
                            x_labels=enc['keypoint_x_labels'], y_labels=enc['keypoint_y_labels'],
                            label_weights=enc['keypoint_weights'], decoded_keypoints=dec_kp,
                            decoded_scores=dec_sc, label_keypoints=lab_kp, label_scores=lab_sc)
        os.replace(tmp, out / f'{name}.npz')
        rel = VARIANTS[name][0]
        manifest['variants'][name] = dict(
            mmpose_config=rel or f'our {VARIANTS[name][1]} built by mmpose', our_config=VARIANTS[name][1],
            out_channels=k, input_size=[int(w), int(h)],
            bgr_to_rgb=bool(ref_cfg.model.data_preprocessor.get('bgr_to_rgb', False)),
            signature=state_dict_signature(state),
            output_abs_max=round(float(max(simcc_x.abs().max(), simcc_y.abs().max())), 4))
        print(f'{name}: {manifest["variants"][name]}', flush=True)
    manifest['evaluation'] = evaluation_reference(SEED)
    tmp = out / 'manifest.json.tmp'
    tmp.write_text(json.dumps(manifest, indent=1) + '\n')
    os.replace(tmp, out / 'manifest.json')


def evaluation_reference(seed: int) -> dict:
    """mmpose's OKS-NMS (COCO sigmas from its own dataset file) kept indices on 30 seeded cases, and
    its MpiiPCKAccuracy table on seeded predictions."""
    from mmpose.evaluation.functional.nms import oks_nms
    from mmpose.evaluation.metrics.keypoint_2d_metrics import MpiiPCKAccuracy
    sigmas = dataset_meta_like_mmpose('coco.py')['sigmas'].astype(np.float64)
    kept = []
    for trial in range(30):
        c = seeded.nms_inputs(seed, trial)
        db = [dict(keypoints=np.concatenate([k, np.ones((17, 1))], 1), score=s, area=a)
              for k, s, a in zip(c['keypoints'], c['scores'], c['areas'])]
        kept.append([int(i) for i in oks_nms(db, 0.9, sigmas=sigmas)])
    p = seeded.pckh_inputs(seed)
    table = MpiiPCKAccuracy(norm_item='head', prefix='mpii').compute_metrics(  # it adds 1 (1-based joints)
        [dict(pred_coords=p['pred'][i:i + 1] - 1.0, gt_coords=p['truth'][i:i + 1], mask=p['visible'][i:i + 1],
              head_size=np.array([[p['head'][i]] * 2])) for i in range(len(p['head']))])
    return dict(coco_sigmas=sigmas.tolist(), oks_nms_threshold=0.9, oks_nms_kept=kept,
                mpii_pckh={k: float(v) for k, v in table.items()})


def serve() -> None:
    """Benchmark worker: one JSON request per stdin line, one JSON reply per stdout line.
    {"cmd": "build", "variant": "m", "batch": 32} then {"cmd": "time", "variant": "m", "iters": 3}."""
    models, inputs = {}, {}
    reply = sys.stdout
    sys.stdout = sys.stderr  # library chatter must not corrupt the protocol
    for line in sys.stdin:
        req = json.loads(line)
        if req['cmd'] == 'quit':
            break
        name = req['variant']
        if req['cmd'] == 'build':
            torch.set_num_threads(int(req.get('threads', torch.get_num_threads())))
            ref_cfg, _ = load_variant_config(name)
            torch.manual_seed(SEED)
            models[name] = build_reference(ref_cfg)
            w, h = ref_cfg.codec.input_size
            inputs[name] = torch.randn(int(req['batch']), 3, h, w)
            result = {'ok': True, 'threads': torch.get_num_threads()}
        elif req['cmd'] == 'time':
            times = []
            with torch.no_grad():
                for _ in range(int(req['iters'])):
                    t0 = time.perf_counter()
                    models[name](inputs[name], None, mode='tensor')
                    times.append(time.perf_counter() - t0)
            result = {'seconds': times}
        else:
            result = {'error': f'unknown cmd {req["cmd"]!r}'}
        reply.write(json.dumps(result) + '\n')
        reply.flush()


RTMPOSE_S_RECIPE = 'body_2d_keypoint/rtmpose/coco/rtmpose-s_8xb256-420e_coco-256x192.py'


def recipe() -> dict:
    """The training hyper-parameters of mmpose's RTMPose-s config, with the defaults of the classes it
    names read from mmpose / mmdet themselves: the keys of tests/pipeline/test_recipe.py RECORDED."""
    import inspect

    from mmengine.config import Config
    mmpose = import_mmpose()
    cfg = Config.fromfile(str(Path(mmpose.__file__).parent / '.mim' / 'configs' / RTMPOSE_S_RECIPE))
    from mmpose.datasets.transforms import RandomBBoxTransform, RandomFlip, RandomHalfBody
    from mmpose.registry import MODELS
    from mmdet.datasets.transforms import YOLOXHSVRandomAug

    def defaults(cls) -> dict:
        return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}

    def step(pipeline, name) -> dict:
        return next(dict(t) for t in pipeline if t['type'] == name)

    def album(pipeline, name) -> dict:
        return next(dict(t) for t in step(pipeline, 'Albumentation')['transforms'] if t['type'] == name)

    hooks = {h['type'].split('.')[-1]: h for h in cfg.custom_hooks}
    stage2 = hooks['PipelineSwitchHook']
    warmup, cosine = cfg.param_scheduler
    ema_cls = MODELS.get(hooks['EMAHook']['ema_type'])
    if ema_cls is None:
        from mmdet.registry import MODELS as MMDET_MODELS
        ema_cls = MMDET_MODELS.get(hooks['EMAHook']['ema_type'])
    half = {**defaults(RandomHalfBody), **step(cfg.train_pipeline, 'RandomHalfBody')}
    hsv = {**defaults(YOLOXHSVRandomAug), **step(cfg.train_pipeline, 'mmdet.YOLOXHSVRandomAug')}
    opt = cfg.optim_wrapper
    out = {
        'epochs': cfg.train_cfg.max_epochs, 'stage2.first_epoch': stage2['switch_epoch'],
        'batch_per_gpu': cfg.train_dataloader.batch_size,
        'lr_at_real_batch': opt.optimizer.lr,  # auto_scale_lr needs --auto-scale-lr
        'weight_decay': float(opt.optimizer.weight_decay),
        'norm_and_bias_decay': float(opt.optimizer.weight_decay) * max(opt.paramwise_cfg.norm_decay_mult,
                                                                       opt.paramwise_cfg.bias_decay_mult),
        'warmup.iters': warmup['end'], 'warmup.start_factor': warmup['start_factor'],
        'cosine.first_epoch': cosine['begin'], 'cosine.eta_min_factor': cosine['eta_min'] / opt.optimizer.lr,
        'grad_clip': opt.get('clip_grad'), 'amp': opt.type == 'AmpOptimWrapper',
        'ema.momentum': hooks['EMAHook']['momentum'], 'ema.gamma': defaults(ema_cls)['gamma'],
        'ema.update_buffers': hooks['EMAHook']['update_buffers'],
        'codec.input_size': list(cfg.codec['input_size']), 'codec.sigma': list(cfg.codec['sigma']),
        'codec.split': cfg.codec['simcc_split_ratio'], 'loss.beta': cfg.model.head.loss['beta'],
        'flip.prob': {**defaults(RandomFlip), **step(cfg.train_pipeline, 'RandomFlip')}['prob'],
        'half_body.prob': half['prob'], 'half_body.min_total_keypoints': half['min_total_keypoints'],
        'half_body.min_upper_keypoints': half['min_upper_keypoints'],
        'half_body.min_lower_keypoints': half['min_lower_keypoints'], 'half_body.padding': half['padding'],
        'half_body.upper_prioritized_prob': half['upper_prioritized_prob'],
        'hsv.deltas': [hsv['hue_delta'], hsv['saturation_delta'], hsv['value_delta']],
        'blur.prob': album(cfg.train_pipeline, 'Blur')['p'], 'median_blur.prob': album(cfg.train_pipeline, 'MedianBlur')['p'],
        'stage1.dropout_prob': album(cfg.train_pipeline, 'CoarseDropout')['p'],
        'stage2.dropout_prob': album(stage2['switch_pipeline'], 'CoarseDropout')['p'],
        'flip_test': cfg.model.test_cfg['flip_test'], 'save_best': cfg.default_hooks.checkpoint['save_best'],
        'val_interval': cfg.train_cfg.val_interval, 'sync_bn': cfg.model.backbone.norm_cfg['type'] == 'SyncBN',
    }
    for stage, pipeline in (('stage1', cfg.train_pipeline), ('stage2', stage2['switch_pipeline'])):
        bbox = {**defaults(RandomBBoxTransform), **step(pipeline, 'RandomBBoxTransform')}
        out.update({f'{stage}.{k}': list(bbox[k]) if k == 'scale_factor' else bbox[k]
                    for k in ('shift_factor', 'shift_prob', 'scale_factor', 'scale_prob', 'rotate_factor', 'rotate_prob')})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('parity')
    p.add_argument('--out', required=True, type=Path)
    p.add_argument('--variants', default=','.join(VARIANTS))
    g = sub.add_parser('golden')
    g.add_argument('--out', required=True, type=Path)
    g.add_argument('--variants', default=','.join(VARIANTS))
    sub.add_parser('serve')
    sub.add_parser('signature')
    sub.add_parser('recipe', help='print the RTMPose-s training recipe as JSON')
    args = parser.parse_args()
    if args.cmd in ('parity', 'golden'):
        names = [n for n in args.variants.split(',') if n]
        unknown = sorted(set(names) - set(VARIANTS))
        if unknown:
            parser.error(f'unknown variants {unknown}; known: {sorted(VARIANTS)}')
        (run_parity if args.cmd == 'parity' else run_golden)(args.out, names)
    elif args.cmd == 'serve':
        serve()
    elif args.cmd == 'recipe':
        print(json.dumps(recipe()))
    else:
        ref_cfg, _ = load_variant_config('m')
        sd = build_reference(ref_cfg).state_dict()
        print(json.dumps(state_dict_signature(sd)))
        for key in sorted(sd):
            print(key, tuple(sd[key].shape))


if __name__ == '__main__':
    main()
