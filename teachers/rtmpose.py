"""RTMPose (CSPNeXt backbone + RTMCC SimCC head) in plain PyTorch, one file, no registries.

Module and parameter names follow mmpose 1.x / mmdet 3.x exactly, so a state dict saved by mmpose's
``TopdownPoseEstimator`` loads here with ``strict=True`` and the reverse holds too
(``backbone.stem.0.conv.weight``, ``backbone.stage4.1.conv1.bn.running_var``, ``head.mlp.0.g``,
``head.gau.uv.weight``, ...). The forward pass repeats mmpose's operations in mmpose's order, so in eval
mode the outputs match mmpose to float32 rounding (tests/parity/test_mmpose_parity.py measures it).

The model is built from an mmpose-format config (``model.backbone``, ``model.head``,
``model.data_preprocessor``, ``codec``); options that mmpose would honour but this file does not
implement are refused with an error naming the config, never silently ignored.

There is no Python control flow on tensor values, so the model traces and exports to ONNX as is.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from data.files import to_plain
from teachers.simcc import SimCCCodec

# CSPNeXt stage settings, per stage: in_channels, out_channels, num_blocks, add_identity, use_spp
# (values before widen/deepen factors; mmdet's CSPNeXt.arch_settings).
CSPNEXT_ARCH_SETTINGS = {
    'P5': [(64, 128, 3, True, False), (128, 256, 6, True, False),
           (256, 512, 6, True, False), (512, 1024, 3, False, True)],
    'P6': [(64, 128, 3, True, False), (128, 256, 6, True, False),
           (256, 512, 6, True, False), (512, 768, 3, True, False),
           (768, 1024, 3, False, True)],
}

# CSPNeXt's own default when a config gives no norm_cfg. A config that gives one (mmpose's RTMPose
# configs give dict(type='SyncBN')) gets torch's defaults for the keys it leaves out (eps 1e-5,
# momentum 0.1), exactly as mmcv.cnn.build_norm_layer does.
CSPNEXT_DEFAULT_NORM = {'type': 'BN', 'momentum': 0.03, 'eps': 0.001}
_NORM_TYPES = {'BN', 'BN2d', 'SyncBN'}  # all become BatchNorm2d here (single-process model)


class ConfigError(ValueError):
    """A model config asks for something this implementation does not provide."""


# ----------------------------------------------------------------------------------------------
# Backbone building blocks (mmcv ConvModule and mmdet CSPNeXt layers, same attribute names)
# ----------------------------------------------------------------------------------------------

def _activation(act_cfg: Mapping[str, Any]) -> nn.Module:
    kind = act_cfg.get('type', 'SiLU')
    if kind in ('SiLU', 'Swish'):  # mmcv's Swish is x * sigmoid(x), the same function as SiLU
        return nn.SiLU(inplace=True)
    if kind == 'ReLU':
        return nn.ReLU(inplace=True)
    raise ConfigError(f'unsupported activation {kind!r} (SiLU, Swish or ReLU)')


class ConvModule(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> activation; mmcv ConvModule with a norm layer."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, norm: Mapping[str, float] | None = None,
                 act_cfg: Mapping[str, Any] | None = None):
        super().__init__()
        norm = norm or {'eps': 1e-5, 'momentum': 0.1}
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=norm['eps'], momentum=norm['momentum'])
        self.activate = _activation(act_cfg or {'type': 'SiLU'})

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


class DepthwiseSeparableConvModule(nn.Module):
    """Depthwise ConvModule followed by a pointwise (1x1) ConvModule, as in mmcv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, norm=None, act_cfg=None):
        super().__init__()
        self.depthwise_conv = ConvModule(in_channels, in_channels, kernel_size, stride, padding,
                                         groups=in_channels, norm=norm, act_cfg=act_cfg)
        self.pointwise_conv = ConvModule(in_channels, out_channels, 1, norm=norm, act_cfg=act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class CSPNeXtBlock(nn.Module):
    """3x3 ConvModule then a 5x5 depthwise-separable ConvModule, with an optional identity add."""

    def __init__(self, in_channels: int, out_channels: int, expansion: float = 0.5,
                 add_identity: bool = True, kernel_size: int = 5, norm=None, act_cfg=None):
        super().__init__()
        hidden_channels = int(out_channels * expansion)
        self.conv1 = ConvModule(in_channels, hidden_channels, 3, 1, 1, norm=norm, act_cfg=act_cfg)
        self.conv2 = DepthwiseSeparableConvModule(hidden_channels, out_channels, kernel_size, 1,
                                                  kernel_size // 2, norm=norm, act_cfg=act_cfg)
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class ChannelAttention(nn.Module):
    """Squeeze (global average) -> 1x1 conv with bias -> hard sigmoid -> rescale channels."""

    def __init__(self, channels: int):
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1, 1, 0, bias=True)
        self.act = nn.Hardsigmoid(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.act(self.fc(self.global_avgpool(x)))


class CSPLayer(nn.Module):
    """Cross-stage-partial layer: a block branch and a 1x1 shortcut branch, concatenated."""

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: float = 0.5,
                 num_blocks: int = 1, add_identity: bool = True, channel_attention: bool = False,
                 norm=None, act_cfg=None):
        super().__init__()
        mid_channels = int(out_channels * expand_ratio)
        self.channel_attention = channel_attention
        self.main_conv = ConvModule(in_channels, mid_channels, 1, norm=norm, act_cfg=act_cfg)
        self.short_conv = ConvModule(in_channels, mid_channels, 1, norm=norm, act_cfg=act_cfg)
        self.final_conv = ConvModule(2 * mid_channels, out_channels, 1, norm=norm, act_cfg=act_cfg)
        self.blocks = nn.Sequential(*[
            CSPNeXtBlock(mid_channels, mid_channels, 1.0, add_identity, norm=norm, act_cfg=act_cfg)
            for _ in range(num_blocks)])
        if channel_attention:
            self.attention = ChannelAttention(2 * mid_channels)

    def forward(self, x: Tensor) -> Tensor:
        x_short = self.short_conv(x)
        x_main = self.blocks(self.main_conv(x))
        x_final = torch.cat((x_main, x_short), dim=1)
        if self.channel_attention:
            x_final = self.attention(x_final)
        return self.final_conv(x_final)


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: 1x1 conv, concat of stride-1 max pools, 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_sizes: Sequence[int] = (5, 9, 13), norm=None, act_cfg=None):
        super().__init__()
        mid_channels = in_channels // 2
        self.conv1 = ConvModule(in_channels, mid_channels, 1, norm=norm, act_cfg=act_cfg)
        self.poolings = nn.ModuleList(
            [nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in kernel_sizes])
        self.conv2 = ConvModule(mid_channels * (len(kernel_sizes) + 1), out_channels, 1,
                                norm=norm, act_cfg=act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = torch.cat([x] + [pool(x) for pool in self.poolings], dim=1)
        return self.conv2(x)


class CSPNeXt(nn.Module):
    """CSPNeXt backbone (RTMDet / RTMPose). Returns the feature maps of ``out_indices``
    (0 = stem, i = stage i) as a tuple, like mmdet."""

    def __init__(self, arch: str = 'P5', deepen_factor: float = 1.0, widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (4,), expand_ratio: float = 0.5,
                 spp_kernel_sizes: Sequence[int] = (5, 9, 13), channel_attention: bool = True,
                 norm: Mapping[str, float] | None = None,
                 act_cfg: Mapping[str, Any] | None = None,
                 arch_ovewrite: Sequence[Sequence] | None = None):
        super().__init__()
        if arch not in CSPNEXT_ARCH_SETTINGS:
            raise ConfigError(f'unknown CSPNeXt arch {arch!r} (P5 or P6)')
        # mmdet's arch_ovewrite (its spelling) replaces the stage table: rows of
        # (in_channels, out_channels, num_blocks, add_identity, use_spp).
        settings = [tuple(row) for row in arch_ovewrite] if arch_ovewrite else CSPNEXT_ARCH_SETTINGS[arch]
        for row in settings:
            if len(row) != 5:
                raise ConfigError(f'CSPNeXt stage setting {row!r}: expected '
                                  '(in_channels, out_channels, num_blocks, add_identity, use_spp)')
        if not set(out_indices) <= set(range(len(settings) + 1)):
            raise ConfigError(f'out_indices {tuple(out_indices)} outside 0..{len(settings)}')
        norm = dict(norm or CSPNEXT_DEFAULT_NORM)
        act_cfg = dict(act_cfg or {'type': 'SiLU'})
        self.out_indices = tuple(out_indices)
        stem_mid = int(settings[0][0] * widen_factor // 2)
        stem_out = int(settings[0][0] * widen_factor)
        self.stem = nn.Sequential(
            ConvModule(3, stem_mid, 3, 2, 1, norm=norm, act_cfg=act_cfg),
            ConvModule(stem_mid, stem_mid, 3, 1, 1, norm=norm, act_cfg=act_cfg),
            ConvModule(stem_mid, stem_out, 3, 1, 1, norm=norm, act_cfg=act_cfg))
        self.layers = ['stem']
        for i, (c_in, c_out, n_blocks, add_identity, use_spp) in enumerate(settings):
            c_in, c_out = int(c_in * widen_factor), int(c_out * widen_factor)
            n_blocks = max(round(n_blocks * deepen_factor), 1)
            stage: list[nn.Module] = [ConvModule(c_in, c_out, 3, 2, 1, norm=norm, act_cfg=act_cfg)]
            if use_spp:
                stage.append(SPPBottleneck(c_out, c_out, spp_kernel_sizes, norm=norm, act_cfg=act_cfg))
            stage.append(CSPLayer(c_out, c_out, expand_ratio, n_blocks, add_identity,
                                  channel_attention, norm=norm, act_cfg=act_cfg))
            self.add_module(f'stage{i + 1}', nn.Sequential(*stage))
            self.layers.append(f'stage{i + 1}')
        self.out_channels = [stem_out] + [int(s[1] * widen_factor) for s in settings]
        self.strides = [2 ** (i + 1) for i in range(len(settings) + 1)]  # stem /2, each stage /2 more

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


# ----------------------------------------------------------------------------------------------
# RTMCC head (mmpose RTMCCHead, RTMCCBlock, ScaleNorm, Scale)
# ----------------------------------------------------------------------------------------------

class ScaleNorm(nn.Module):
    """x / clamp(||x||_2 * dim**-0.5, eps) * g, with a single learned scalar g."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.scale = dim ** -0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        # linalg.vector_norm is what torch.norm(x, dim=-1) dispatches to and exports to ONNX.
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class Scale(nn.Module):
    """Learned per-channel multiplier (the GAU's residual scale)."""

    def __init__(self, dim: int, init_value: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class RTMCCBlock(nn.Module):
    """Gated attention unit over keypoint tokens (self-attention form, no relative bias, no RoPE).

    attention = relu(q k^T / sqrt(s))**2 ; out = o(u * (attention @ v)) (+ scaled residual).
    """

    def __init__(self, num_token: int, in_token_dims: int, out_token_dims: int,
                 expansion_factor: float = 2, s: int = 128, eps: float = 1e-5,
                 dropout_rate: float = 0.0, act_fn: str = 'SiLU'):
        super().__init__()
        self.s = s
        self.num_token = num_token
        self.e = int(in_token_dims * expansion_factor)
        self.o = nn.Linear(self.e, out_token_dims, bias=False)
        self.uv = nn.Linear(in_token_dims, 2 * self.e + self.s, bias=False)
        # mmpose initialises gamma/beta with torch.rand; loaded checkpoints overwrite them anyway.
        self.gamma = nn.Parameter(torch.rand((2, self.s)))
        self.beta = nn.Parameter(torch.rand((2, self.s)))
        self.ln = ScaleNorm(in_token_dims, eps=eps)
        nn.init.xavier_uniform_(self.uv.weight)
        self.act_fn = _activation({'type': act_fn})
        self.shortcut = in_token_dims == out_token_dims
        if self.shortcut:
            self.res_scale = Scale(in_token_dims)
        self.sqrt_s = math.sqrt(s)
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()

    def _attention(self, x: Tensor) -> Tensor:
        x = self.ln(x)
        uv = self.act_fn(self.uv(x))  # (B, K, 2e + s)
        u, v, base = torch.split(uv, [self.e, self.e, self.s], dim=2)
        base = base.unsqueeze(2) * self.gamma[None, None, :] + self.beta  # (B, K, 2, s)
        q, k = torch.unbind(base, dim=2)
        qk = torch.bmm(q, k.permute(0, 2, 1))  # (B, K, K)
        kernel = self.dropout(torch.square(F.relu(qk / self.sqrt_s)))
        return self.o(u * torch.bmm(kernel, v))

    def forward(self, x: Tensor) -> Tensor:
        # drop_path is 0 in every RTMPose config (checked by the builder), so it is omitted.
        if self.shortcut:
            return self.res_scale(x) + self._attention(x)
        return self._attention(x)


class RTMCCHead(nn.Module):
    """Large-kernel conv -> flatten per keypoint -> ScaleNorm + Linear -> GAU -> x/y classifiers."""

    def __init__(self, in_channels: int, out_channels: int, input_size: Sequence[int],
                 in_featuremap_size: Sequence[int], simcc_split_ratio: float = 2.0,
                 final_layer_kernel_size: int = 1, hidden_dims: int = 256, s: int = 128,
                 expansion_factor: float = 2, dropout_rate: float = 0.0, act_fn: str = 'ReLU'):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.input_size = tuple(input_size)
        self.in_featuremap_size = tuple(in_featuremap_size)
        self.simcc_split_ratio = simcc_split_ratio
        flatten_dims = self.in_featuremap_size[0] * self.in_featuremap_size[1]
        self.final_layer = nn.Conv2d(in_channels, out_channels, final_layer_kernel_size, 1,
                                     final_layer_kernel_size // 2)
        self.mlp = nn.Sequential(ScaleNorm(flatten_dims),
                                 nn.Linear(flatten_dims, hidden_dims, bias=False))
        bins_x = int(self.input_size[0] * simcc_split_ratio)
        bins_y = int(self.input_size[1] * simcc_split_ratio)
        self.gau = RTMCCBlock(out_channels, hidden_dims, hidden_dims, expansion_factor, s,
                              dropout_rate=dropout_rate, act_fn=act_fn)
        self.cls_x = nn.Linear(hidden_dims, bins_x, bias=False)
        self.cls_y = nn.Linear(hidden_dims, bins_y, bias=False)

    def forward(self, feature: Tensor) -> tuple[Tensor, Tensor]:
        x = self.final_layer(feature)  # (B, K, h, w)
        x = torch.flatten(x, 2)
        x = self.gau(self.mlp(x))  # (B, K, hidden)
        return self.cls_x(x), self.cls_y(x)


# ----------------------------------------------------------------------------------------------
# Whole model and its builder
# ----------------------------------------------------------------------------------------------

class RTMPose(nn.Module):
    """Top-down RTMPose: normalised crops (N, 3, H, W) -> SimCC logits (simcc_x, simcc_y).

    State-dict keys are ``backbone.*`` and ``head.*`` exactly as in mmpose's TopdownPoseEstimator;
    the normalisation constants are non-persistent buffers (mmpose keeps them out of the state
    dict too).
    """

    def __init__(self, backbone: CSPNeXt, head: RTMCCHead, codec: SimCCCodec,
                 mean: Sequence[float], std: Sequence[float], bgr_to_rgb: bool,
                 skeleton_name: str | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.codec = codec
        self.input_size = tuple(int(v) for v in codec.input_size)  # (w, h)
        self.num_keypoints = head.out_channels
        self.skeleton_name = skeleton_name
        self.bgr_to_rgb = bool(bgr_to_rgb)
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.backbone(x)[-1])

    def normalize(self, imgs: Tensor) -> Tensor:
        """uint8 BGR images (N, H, W, 3) -> normalised float (N, 3, H, W), as mmpose's
        PoseDataPreprocessor: optional BGR->RGB swap, then (x - mean) / std in float32."""
        if imgs.ndim != 4 or imgs.shape[-1] != 3:
            raise ValueError(f'normalize expects (N, H, W, 3) images, got {tuple(imgs.shape)}')
        x = imgs.permute(0, 3, 1, 2)
        if self.bgr_to_rgb:
            x = x[:, [2, 1, 0]]
        x = x.to(device=self.mean.device, dtype=torch.float32)
        return (x - self.mean) / self.std


def load_config(cfg: Any) -> tuple[dict, str]:
    """Path / mmengine.Config / dict -> (plain dict, a name for error messages)."""
    if isinstance(cfg, (str, Path)):
        from mmengine.config import Config  # imported lazily: only path configs need it
        path = Path(cfg)
        if not path.is_file():
            raise FileNotFoundError(f'model config not found: {path}')
        return to_plain(Config.fromfile(str(path))), str(path)
    name = getattr(cfg, 'filename', None) or '<config dict>'
    return to_plain(cfg), str(name)


def _norm_from_config(norm_cfg: Mapping[str, Any] | None, where: str) -> dict:
    if norm_cfg is None:
        return dict(CSPNEXT_DEFAULT_NORM)
    kind = norm_cfg.get('type', 'BN')
    if kind not in _NORM_TYPES:
        raise ConfigError(f'{where}: backbone norm_cfg type {kind!r} not supported ({sorted(_NORM_TYPES)})')
    if not norm_cfg.get('requires_grad', True):
        raise ConfigError(f'{where}: frozen norm layers (requires_grad=False) are not supported')
    return {'eps': float(norm_cfg.get('eps', 1e-5)), 'momentum': float(norm_cfg.get('momentum', 0.1))}


def build_backbone(cfg: Mapping[str, Any], where: str = '<config>') -> CSPNeXt:
    if cfg.get('type') != 'CSPNeXt':
        raise ConfigError(f'{where}: model.backbone.type must be CSPNeXt, got {cfg.get("type")!r}')
    if cfg.get('use_depthwise', False):
        raise ConfigError(f'{where}: CSPNeXt use_depthwise=True is not supported')
    if cfg.get('conv_cfg') is not None:
        raise ConfigError(f'{where}: CSPNeXt conv_cfg is not supported (plain Conv2d only)')
    return CSPNeXt(
        arch=cfg.get('arch', 'P5'),
        deepen_factor=float(cfg.get('deepen_factor', 1.0)),
        widen_factor=float(cfg.get('widen_factor', 1.0)),
        out_indices=tuple(cfg.get('out_indices', (2, 3, 4))),
        expand_ratio=float(cfg.get('expand_ratio', 0.5)),
        spp_kernel_sizes=tuple(cfg.get('spp_kernal_sizes', (5, 9, 13))),  # mmdet's spelling
        channel_attention=bool(cfg.get('channel_attention', True)),
        norm=_norm_from_config(cfg.get('norm_cfg'), where),
        act_cfg=cfg.get('act_cfg', {'type': 'SiLU'}),
        arch_ovewrite=cfg.get('arch_ovewrite'))


def build_head(cfg: Mapping[str, Any], where: str = '<config>') -> RTMCCHead:
    if cfg.get('type') != 'RTMCCHead':
        raise ConfigError(f'{where}: model.head.type must be RTMCCHead, got {cfg.get("type")!r}')
    gau = dict(hidden_dims=256, s=128, expansion_factor=2, dropout_rate=0.0, drop_path=0.0,
               act_fn='ReLU', use_rel_bias=False, pos_enc=False)  # RTMCCHead's defaults
    gau.update(cfg.get('gau_cfg', {}))
    if gau['use_rel_bias'] or gau['pos_enc']:
        raise ConfigError(f'{where}: gau_cfg use_rel_bias / pos_enc are not supported (RTMPose uses neither)')
    if gau['drop_path'] > 0:
        raise ConfigError(f'{where}: gau_cfg drop_path > 0 is not supported')
    in_channels = cfg['in_channels']
    if isinstance(in_channels, (list, tuple)):
        raise ConfigError(f'{where}: RTMCCHead takes one input feature map (in_channels is a list)')
    return RTMCCHead(
        in_channels=int(in_channels), out_channels=int(cfg['out_channels']),
        input_size=tuple(cfg['input_size']), in_featuremap_size=tuple(cfg['in_featuremap_size']),
        simcc_split_ratio=float(cfg.get('simcc_split_ratio', 2.0)),
        final_layer_kernel_size=int(cfg.get('final_layer_kernel_size', 1)),
        hidden_dims=int(gau['hidden_dims']), s=int(gau['s']),
        expansion_factor=gau['expansion_factor'], dropout_rate=float(gau['dropout_rate']),
        act_fn=gau['act_fn'])


def build_model(cfg: Any) -> RTMPose:
    """Build RTMPose from an mmpose-style config: a path, an mmengine.Config or a dict holding
    ``model`` (TopdownPoseEstimator with data_preprocessor, backbone, head) and optionally
    ``codec`` (else ``model.head.decoder``) and ``skeleton``."""
    cfg, where = load_config(cfg)
    model_cfg = cfg.get('model')
    if not model_cfg:
        raise ConfigError(f'{where}: no `model` entry')
    for key in ('backbone', 'head'):
        if key not in model_cfg:
            raise ConfigError(f'{where}: model.{key} is missing')
    codec_cfg = cfg.get('codec') or model_cfg['head'].get('decoder')
    if not codec_cfg:
        raise ConfigError(f'{where}: neither `codec` nor model.head.decoder is given')
    try:
        codec = SimCCCodec.from_config(codec_cfg)
    except ValueError as err:
        raise ConfigError(f'{where}: {err}') from err
    backbone = build_backbone(model_cfg['backbone'], where)
    head = build_head(model_cfg['head'], where)
    if backbone.out_channels[max(backbone.out_indices)] != head.in_channels:
        raise ConfigError(
            f'{where}: head.in_channels={head.in_channels} but the backbone gives '
            f'{backbone.out_channels[max(backbone.out_indices)]} channels')
    if tuple(head.input_size) != tuple(codec.input_size):
        raise ConfigError(f'{where}: head.input_size {head.input_size} != codec.input_size {codec.input_size}')
    if head.simcc_split_ratio != codec.simcc_split_ratio:
        raise ConfigError(f'{where}: head and codec simcc_split_ratio differ')
    stride = backbone.strides[max(backbone.out_indices)]
    expected_fm = tuple(s // stride for s in codec.input_size)
    if head.in_featuremap_size != expected_fm:
        raise ConfigError(f'{where}: head.in_featuremap_size {head.in_featuremap_size} != '
                          f'input_size/{stride} {expected_fm} (the backbone output used has stride {stride})')
    pre = model_cfg.get('data_preprocessor') or {}
    return RTMPose(backbone, head, codec,
                   mean=pre.get('mean', (0.0, 0.0, 0.0)), std=pre.get('std', (1.0, 1.0, 1.0)),
                   bgr_to_rgb=bool(pre.get('bgr_to_rgb', False)),
                   skeleton_name=cfg.get('skeleton'))


def count_flops(model: nn.Module) -> int:
    """Floating-point operations of one eval-mode forward on one image (torch's FLOP counter: a
    multiply-add counts 2), for comparing model sizes."""
    from torch.utils.flop_counter import FlopCounterMode
    w, h = model.input_size
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, h, w, device=next(model.parameters()).device))
    model.train(was_training)
    return int(counter.get_total_flops())
