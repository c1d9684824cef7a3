"""Exporters: ONNX (for rtmlib / onnxruntime) and the mmpose checkpoint + config pair.

ONNX contract (what rtmlib's RTMPose expects): input 'input' float32 (B,3,H,W), already normalised
(mean/std, RGB); outputs 'simcc_x' (B,K,W*split) and 'simcc_y' (B,K,H*split); the batch axis is dynamic.

mmpose contract: <out>/student.pth = {'meta': {'dataset_meta': ...}, 'state_dict': ...} with the
TopdownPoseEstimator key names (backbone.*, head.*), and <out>/student_config.py, an mmpose config
that builds the same network: `mmpose.apis.init_model(student_config.py, student.pth)` then works.
The meta holds only plain Python types so that torch.load(weights_only=True), the default since
torch 2.6 and what mmengine's loader ends up calling, can read it.
"""
from __future__ import annotations

import copy
import pprint
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from data.skeletons import SKELETONS, Skeleton, get_skeleton
from data.files import atomic_write, to_plain

ONNX_INPUT = 'input'
ONNX_OUTPUTS = ('simcc_x', 'simcc_y')


# ----------------------------------------------------------------------------------------------
# ONNX
# ----------------------------------------------------------------------------------------------

def export_onnx(model: nn.Module, input_size: tuple[int, int], path: str | Path, opset: int = 17) -> Path:
    """Export `model` (forward(x (B,3,H,W) normalised) -> (simcc_x, simcc_y)) to ONNX.

    input_size is (w, h). Uses the TorchScript exporter (dynamo=False): the torch.export-based one
    needs the onnxscript package, which this environment does not have, and gains nothing for a
    static conv + GAU network. The model is exported in eval mode and put back as it was.
    """
    path = Path(path)
    w, h = (int(v) for v in input_size)
    device = next(iter(model.parameters()), torch.zeros(0)).device
    dummy = torch.zeros(1, 3, h, w, dtype=torch.float32, device=device)
    was_training = model.training
    model.eval()
    dynamic = {ONNX_INPUT: {0: 'batch'}, **{name: {0: 'batch'} for name in ONNX_OUTPUTS}}

    def write(tmp):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings('ignore', category=DeprecationWarning)  # "legacy exporter" notice
            torch.onnx.export(model, (dummy,), tmp, input_names=[ONNX_INPUT], output_names=list(ONNX_OUTPUTS),
                              dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True,
                              dynamo=False)

    try:
        return atomic_write(path, write)
    finally:
        model.train(was_training)


def onnx_input_size(path: str | Path) -> tuple[int, int]:
    """(w, h) of the static spatial input of an exported model."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inputs = {i.name: i for i in graph.input}
    if ONNX_INPUT not in inputs:
        raise ValueError(f'{path}: ONNX model has no input named {ONNX_INPUT!r} (has {sorted(inputs)})')
    dims = inputs[ONNX_INPUT].type.tensor_type.shape.dim
    if len(dims) != 4 or not dims[2].dim_value or not dims[3].dim_value:
        raise ValueError(f'{path}: input {ONNX_INPUT!r} is not (B,3,H,W) with static H, W')
    return dims[3].dim_value, dims[2].dim_value


def check_onnx(path: str | Path, model: nn.Module, n: int = 2, seed: int = 0) -> float:
    """Run n random normalised inputs through onnxruntime (CPU) and the PyTorch model; return the
    largest absolute difference over both outputs. Also checks input/output names and that a
    batch of n goes through the dynamic axis."""
    import onnxruntime as ort

    path = Path(path)
    w, h = onnx_input_size(path)
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    names = [o.name for o in session.get_outputs()]
    if tuple(names) != ONNX_OUTPUTS:
        raise ValueError(f'{path}: ONNX outputs are {names}, expected {list(ONNX_OUTPUTS)}')
    x = torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))
    onnx_out = session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: x.numpy()})
    was_training = model.training
    model.eval()
    device = next(iter(model.parameters()), torch.zeros(0)).device
    try:
        with torch.no_grad():
            torch_out = [t.detach().float().cpu().numpy() for t in model(x.to(device))]
    finally:
        model.train(was_training)
    diff = 0.0
    for name, a, b in zip(ONNX_OUTPUTS, onnx_out, torch_out):
        if a.shape != b.shape:
            raise ValueError(f'{path}: ONNX {name} has shape {a.shape}, PyTorch gives {b.shape}')
        diff = max(diff, float(np.abs(a - b).max()))
    return diff


# ----------------------------------------------------------------------------------------------
# mmpose
# ----------------------------------------------------------------------------------------------

# mmpose's COCO / MPII joint weights; joints only the union has get 1.
_JOINT_WEIGHT = {'left_elbow': 1.2, 'right_elbow': 1.2, 'left_wrist': 1.5, 'right_wrist': 1.5,
                 'left_knee': 1.2, 'right_knee': 1.2, 'left_ankle': 1.5, 'right_ankle': 1.5}
_LOWER_BODY = {'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle', 'pelvis'}
_COLORS = {'left': [0, 255, 0], 'right': [255, 128, 0], 'centre': [51, 153, 255]}


def _side(name: str) -> str:
    return 'left' if name.startswith('left_') else 'right' if name.startswith('right_') else 'centre'


def _mmpose_flip_pairs(flip_indices) -> list[list[int]]:
    """flip_pairs as parse_pose_metainfo builds them: (swap, joint) per swapped joint, so each
    left/right pair appears in both orders."""
    pairs = []
    for i, j in enumerate(int(v) for v in flip_indices):
        if j != i and [j, i] not in pairs:
            pairs.append([j, i])
    return pairs


def dataset_info_from_meta(dataset_meta: dict) -> dict:
    """The inverse of mmpose's parse_pose_metainfo: the raw `dataset_info` config layout
    (keypoint_info, skeleton_info, joint_weights, sigmas) that mmpose dataset configs hold."""
    names = [dataset_meta['keypoint_id2name'][i] for i in range(int(dataset_meta['num_keypoints']))]
    upper = set(dataset_meta.get('upper_body_ids', []))
    lower = set(dataset_meta.get('lower_body_ids', []))
    colors = to_plain(dataset_meta.get('keypoint_colors')) or [[255, 128, 0]] * len(names)
    link_colors = to_plain(dataset_meta.get('skeleton_link_colors')) or [[96, 96, 255]] * len(
        dataset_meta.get('skeleton_links', []))
    keypoint_info = {}
    for i, name in enumerate(names):
        j = int(dataset_meta['flip_indices'][i])
        keypoint_info[i] = dict(name=name, id=i, color=colors[i],
                                type='upper' if i in upper else 'lower' if i in lower else '',
                                swap=names[j] if j != i else '')
    skeleton_info = {n: dict(link=(names[a], names[b]), id=n, color=link_colors[n])
                     for n, (a, b) in enumerate(dataset_meta.get('skeleton_links', []))}
    return dict(dataset_name=dataset_meta['dataset_name'], keypoint_info=keypoint_info,
                skeleton_info=skeleton_info, joint_weights=to_plain(dataset_meta['dataset_keypoint_weights']),
                sigmas=to_plain(dataset_meta['sigmas']))


def skeleton_from_dataset_meta(meta: dict, name: str = 'union') -> Skeleton:
    """The skeleton a checkpoint's dataset_meta describes (what a model trained here predicts)."""
    names = tuple(meta['keypoint_id2name'][i] for i in range(int(meta['num_keypoints'])))
    flip = [int(i) for i in meta['flip_indices']]
    return Skeleton(name, names, tuple((a, b) for a, b in enumerate(flip) if a < b),
                    tuple((int(a), int(b)) for a, b in meta.get('skeleton_links', [])),
                    np.asarray(meta['sigmas'], np.float32))


def dataset_meta_from_skeleton(skeleton: Skeleton | str, dataset_name: str | None = None) -> dict:
    """mmpose's parsed dataset_meta (parse_pose_metainfo keys) for a project skeleton, in plain
    Python types (lists, not numpy arrays) so it survives torch.load(weights_only=True)."""
    sk = get_skeleton(skeleton) if isinstance(skeleton, str) else skeleton
    return complete_dataset_meta({
        'dataset_name': dataset_name or sk.name,
        'num_keypoints': sk.num_joints,
        'keypoint_id2name': dict(enumerate(sk.joint_names)),
        'flip_indices': [int(i) for i in sk.flip_indices],
        'skeleton_links': [[int(a), int(b)] for a, b in sk.links],
        'sigmas': [round(float(s), 6) for s in sk.sigmas],  # float32 -> the decimal the table gives
    })


# mmpose's RTMPose test pipeline; inference_topdown reads cfg.test_dataloader.dataset.pipeline.
def _test_pipeline(input_size):
    return [dict(type='LoadImage'), dict(type='GetBBoxCenterScale'),
            dict(type='TopdownAffine', input_size=list(input_size)), dict(type='PackPoseInputs')]


_MODEL_PREFIXES = ('backbone.', 'neck.', 'head.')


def complete_dataset_meta(dataset_meta: dict) -> dict:
    """Fill the parse_pose_metainfo keys a partial dataset_meta leaves out (name2id, body halves,
    flip pairs, colours, link count, joint weights), from its names and flip_indices, in plain types.
    Needs num_keypoints, keypoint_id2name (or a skeleton name as dataset_name) and flip_indices."""
    meta = to_plain(dict(dataset_meta))
    if 'num_keypoints' not in meta:
        raise ValueError('dataset_meta lacks num_keypoints (use dataset_meta_from_skeleton)')
    k = int(meta['num_keypoints'])
    if 'keypoint_id2name' not in meta:
        raise ValueError('dataset_meta lacks keypoint_id2name (use dataset_meta_from_skeleton)')
    id2name = {int(i): n for i, n in meta['keypoint_id2name'].items()}
    if sorted(id2name) != list(range(k)):
        raise ValueError(f'dataset_meta keypoint_id2name has ids {sorted(id2name)}, expected 0..{k - 1}')
    names = [id2name[i] for i in range(k)]
    flip = [int(v) for v in meta.get('flip_indices', range(k))]
    if len(flip) != k:
        raise ValueError(f'dataset_meta flip_indices has {len(flip)} entries for {k} keypoints')
    links = [[int(a), int(b)] for a, b in meta.get('skeleton_links', [])]
    defaults = {
        'dataset_name': 'custom',
        'keypoint_id2name': dict(enumerate(names)),
        'keypoint_name2id': {n: i for i, n in enumerate(names)},
        'upper_body_ids': [i for i, n in enumerate(names) if n not in _LOWER_BODY],
        'lower_body_ids': [i for i, n in enumerate(names) if n in _LOWER_BODY],
        'flip_indices': flip,
        'flip_pairs': _mmpose_flip_pairs(flip),
        'keypoint_colors': [_COLORS[_side(n)] for n in names],
        'num_skeleton_links': len(links),
        'skeleton_links': links,
        'skeleton_link_colors': [_COLORS[_side(names[a]) if _side(names[a]) == _side(names[b]) else 'centre']
                                 for a, b in links],
        'dataset_keypoint_weights': [float(_JOINT_WEIGHT.get(n, 1.0)) for n in names],
    }
    if 'sigmas' not in meta:
        raise ValueError('dataset_meta lacks sigmas (use dataset_meta_from_skeleton)')
    for key, value in defaults.items():
        meta.setdefault(key, value)
    meta['keypoint_id2name'] = dict(enumerate(names))  # int keys even if they came as str
    return meta


def mmpose_config(model_config_path: str | Path, dataset_meta: dict | None = None):
    """Load an mmpose-format model config and complete it so mmpose runs it on its own: model.type,
    model.data_preprocessor, model.test_cfg, default_scope, no backbone init_cfg (weights come from
    the checkpoint) and, for CSPNeXt, no `_scope_='mmdet'` (mmpose ships the same CSPNeXt, same keys
    and forward, so mmdet is not needed). Returns (Config, dataset_meta, codec input_size).
    dataset_meta defaults to dataset_meta_from_skeleton(cfg.skeleton) when the config names a dataset's
    skeleton (a union's joints depend on the run's datasets: pass its dataset_meta)."""
    from mmengine.config import Config

    config_path = Path(model_config_path)
    if not config_path.is_file():
        raise FileNotFoundError(f'model config {config_path} does not exist')
    cfg = Config.fromfile(str(config_path))
    if 'model' not in cfg or 'head' not in cfg.model or 'backbone' not in cfg.model:
        raise ValueError(f'{config_path}: not an mmpose model config (needs model.backbone and model.head)')
    if dataset_meta is None and cfg.get('skeleton') in SKELETONS:
        dataset_meta = dataset_meta_from_skeleton(cfg.skeleton)
    model = cfg.model
    head = model.head
    if dataset_meta is not None:
        dataset_meta = complete_dataset_meta(dataset_meta)
        num_keypoints = int(dataset_meta['num_keypoints'])
        if 'out_channels' in head and int(head.out_channels) != num_keypoints:
            raise ValueError(f'{config_path}: model.head.out_channels is {head.out_channels} but dataset_meta '
                             f'has {num_keypoints} keypoints')
        head.out_channels = num_keypoints
    model.setdefault('type', 'TopdownPoseEstimator')
    if 'data_preprocessor' not in model:
        if 'data_preprocessor' not in cfg:
            raise ValueError(f'{config_path}: no data_preprocessor (model.data_preprocessor or top level)')
        model.data_preprocessor = copy.deepcopy(cfg.data_preprocessor)
    model.data_preprocessor.setdefault('type', 'PoseDataPreprocessor')
    model.setdefault('test_cfg', dict(flip_test=True))
    if 'init_cfg' in model.backbone:
        model.backbone.init_cfg = None
    if model.backbone.get('type') == 'CSPNeXt' and model.backbone.get('_scope_') == 'mmdet':
        model.backbone.pop('_scope_')
    codec = cfg.get('codec') or head.get('decoder')
    if codec is None or 'input_size' not in codec:
        raise ValueError(f'{config_path}: no codec with input_size (codec or model.head.decoder)')
    cfg.default_scope = 'mmpose'
    for key in ('dataset_info', 'test_dataloader'):
        cfg.pop(key, None)
    return cfg, dataset_meta, tuple(codec['input_size'])


def write_mmpose_config(model_config_path: str | Path, out_path: str | Path,
                        dataset_meta: dict | None = None) -> Path:
    """Write the completed mmpose config (see mmpose_config) atomically, with the keypoint
    metainfo as mmpose's raw `dataset_info` and a test dataloader (inference_topdown reads
    cfg.test_dataloader.dataset.pipeline) whose metainfo is that dataset_info."""
    cfg, dataset_meta, input_size = mmpose_config(model_config_path, dataset_meta)
    # Written by hand after the dump: mmengine's dump sorts dict keys as strings (0, 1, 10, 11, ...)
    # and parse_pose_metainfo reads keypoint_info in dict order.
    pipeline = pprint.pformat(_test_pipeline(input_size), sort_dicts=False, width=100)
    if dataset_meta is not None:
        info = pprint.pformat(dataset_info_from_meta(dataset_meta), sort_dicts=False, width=100)
        tail = ('\n# Keypoint metainfo in mmpose dataset_info layout (joint order matters; written unsorted).\n'
                f'dataset_info = {info}\n'
                f'test_dataloader = dict(batch_size=1, dataset=dict(metainfo=dataset_info, pipeline={pipeline}))\n')
    else:
        tail = f'\ntest_dataloader = dict(batch_size=1, dataset=dict(pipeline={pipeline}))\n'

    def write(tmp):
        cfg.dump(tmp)
        with open(tmp, 'a') as f:
            f.write(tail)

    out_path = Path(out_path)
    return atomic_write(out_path, write)


def export_mmpose(state_dict: dict, model_config_path: str | Path, out_dir: str | Path, dataset_meta: dict,
                  extra_meta: dict | None = None) -> dict[str, Path]:
    """Write <out_dir>/student.pth and <out_dir>/student_config.py for mmpose 1.x; returns
    {'checkpoint': path, 'config': path}.

    state_dict: TopdownPoseEstimator names (backbone.*, head.*), e.g. the EMA student weights with
    any 'student.'/'module.' prefix already stripped. model_config_path: the mmpose-format model
    config the student was built from. dataset_meta: mmpose's parsed metainfo
    (dataset_meta_from_skeleton; a partial one is completed by complete_dataset_meta); its
    num_keypoints must match the head. The checkpoint meta holds plain types only.
    """
    bad = [k for k in state_dict if not k.startswith(_MODEL_PREFIXES)]
    if bad:
        raise ValueError(f'state_dict key {bad[0]!r} is not a TopdownPoseEstimator key '
                         f'(expected one of the prefixes {_MODEL_PREFIXES}); strip wrapper prefixes first')
    dataset_meta = complete_dataset_meta(dataset_meta)
    num_keypoints = int(dataset_meta['num_keypoints'])
    final = state_dict.get('head.final_layer.weight')
    if final is not None and final.shape[0] != num_keypoints:
        raise ValueError(f'state_dict head.final_layer.weight has {final.shape[0]} output channels but '
                         f'dataset_meta has {num_keypoints} keypoints')
    mmpose_config(model_config_path, dataset_meta)  # validate before writing anything
    out_dir = Path(out_dir)
    checkpoint = {'meta': {**to_plain(extra_meta or {}), 'dataset_meta': dataset_meta},
                  'state_dict': {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}}
    pth = atomic_write(out_dir / 'student.pth',
                       lambda tmp: torch.save(checkpoint, tmp))
    py = write_mmpose_config(model_config_path, out_dir / 'student_config.py', dataset_meta)
    return {'checkpoint': pth, 'config': py}
