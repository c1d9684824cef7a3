"""pipeline/run.py, pipeline/models.py, pipeline/run_folder.py: what a run is, read from its config."""
import torch

from pipeline.config import load_config, resolve
from pipeline.models import kd_temperature
from pipeline.run_folder import RunFolder

DEMO = 'pipeline/configs/demo_synthetic.py'


def test_kd_temperature_is_the_distribution_the_loss_distils_towards():
    """Cache fidelity is measured at kd_temperature: softmax(stored / kd_temperature) must be exactly
    the KD loss's target built from the stored rows (sharpened by the head's beta / train.temperature)."""
    from training.losses import teacher_target_logp
    for t in (1.0, 2.0):
        cfg = load_config(resolve(DEMO), {'train.temperature': t})
        assert kd_temperature(cfg) == t / 10.0  # RTMPose's head loss beta is 10
        stored = torch.log_softmax(torch.randn(3, 5, 192), dim=-1)
        target = teacher_target_logp(stored, beta=10.0, temperature=t)
        assert torch.allclose(target, torch.log_softmax(stored / kd_temperature(cfg), dim=-1), atol=1e-5)


def test_run_folder_layout_and_finished(tmp_path):
    f = RunFolder(tmp_path / 'offline')
    assert f.baseline().path == tmp_path / 'supervised'
    assert f.read_log() == [] and not f.finished(2)
    f.path.mkdir()
    f.log(dict(epoch=1, loss=float('nan')))  # non-finite values are written as null
    f.log(dict(epoch=2))
    assert [r['epoch'] for r in f.read_log()] == [1, 2] and f.read_log()[0]['loss'] is None
    assert not f.finished(2)  # no checkpoint yet
    f.checkpoint.write_bytes(b'x')
    assert f.finished(2) and not f.finished(3)
