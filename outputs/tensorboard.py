"""TensorBoard event files of a training run (RunFolder.tensorboard): the loss terms, lr and gradient norm
every LOG_EVERY steps and at each epoch's last step; per epoch the mean loss terms and throughput, the
teacher compute the cache saved so far, and at each val epoch the headline val metrics in %. A resumed
run writes to the same folder, its steps continuing from its checkpoint's."""
from __future__ import annotations

from pathlib import Path

LOG_EVERY = 20  # steps; the progress bar syncs with the device at the same steps


class TrainBoard:
    def __init__(self, folder: Path, start_step: int):
        from torch.utils.tensorboard import SummaryWriter
        # a resumed run logs steps after its checkpoint's: what a killed run logged after it is purged
        self.writer = SummaryWriter(str(folder), purge_step=start_step + 1 if start_step else None)

    def step(self, step: int, parts: dict, lr: float, grad_norm: float) -> None:
        for name, value in parts.items():
            self.writer.add_scalar(f'train/loss_{name}', float(value.detach()), step)
        self.writer.add_scalar('train/loss_total', sum(float(v.detach()) for v in parts.values()), step)
        self.writer.add_scalar('train/lr', lr, step)
        self.writer.add_scalar('train/grad_norm', float(grad_norm), step)

    def epoch(self, step: int, record: dict, val_metrics: dict, teacher_seconds_saved: float | None) -> None:
        """`record`: the epoch's log record; `val_metrics`: {'<dataset>/<metric>': fraction} of a val epoch."""
        for key, value in record.items():
            if key.startswith('loss') or key in ('images_per_s', 'seconds'):
                self.writer.add_scalar(f'epoch/{key}', value, step)
        for key, value in val_metrics.items():
            self.writer.add_scalar(f'val/{key}', 100 * value, step)
        if teacher_seconds_saved is not None:
            self.writer.add_scalar('cost/teacher_seconds_saved', teacher_seconds_saved, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
