"""The models' geometry and loss settings, read from their mmpose-style configs."""
from __future__ import annotations

from mmengine.config import Config

from pipeline.config import resolve


def model_geometry(model_cfg_path) -> dict:
    """input size (w, h) and SimCC split ratio of an mmpose-style model config."""
    mc = Config.fromfile(str(resolve(model_cfg_path)))
    return dict(input_size=tuple(int(v) for v in mc.codec['input_size']),
                split=float(mc.codec.get('simcc_split_ratio', 2.0)))


def head_loss_beta(model_cfg_path) -> float:
    """The SimCC loss beta of an mmpose-style model config's head (RTMPose: 10, as mmpose's
    KLDiscretLoss / KDLoss): the sharpening both the ground-truth and the KD loss apply."""
    head = Config.fromfile(str(resolve(model_cfg_path))).model.head
    return float(head.get('loss', {}).get('beta', 10.0))


def kd_temperature(cfg: Config) -> float:
    """The temperature, applied to the stored log-probabilities, of the distribution the student is
    distilled towards: the KD loss sharpens them by the student head's loss beta divided by
    train.temperature. Cache fidelity is measured there."""
    return float(cfg.train.temperature) / head_loss_beta(cfg.student.config)
