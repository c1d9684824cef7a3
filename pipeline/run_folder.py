"""The run folder: the one owner of a training run's files (RunFolder)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from mmengine.config import Config

from pipeline.config import load_config, repo_relative, resolve

# benchmarks/offline_vs_online.py leaves its last result in the run's work_dir under this name; the
# report quotes it.
OFFLINE_VS_ONLINE_FILE = 'offline_vs_online.json'


class RunFolder:
    """The one owner of a training run's folder layout (outputs/<run>/<mode>/): every file of a run is
    reached through it.

        run.json             what trained: mode, model config, epochs, batch, lr, datasets, cache, recipe;
                             its paths relative to the run folder (the config) or as the config writes
                             them (repository-relative), so a moved run folder still reports and resumes
        pipeline_config.py   the resolved pipeline config, so export-report sees exactly what trained
        log.jsonl            one record per epoch (losses, lr, throughput, val metrics when evaluated)
        last.pth             the EMA weights (mmpose layout) + the state to resume from
        best.pth             the EMA weights at the best val score by evaluation.save_best (meta.best)
        student_config.py    the mmpose config of the student (student runs)
        report/              export-report's output (report/metrics.json: the report's numbers)
        tb/                  TensorBoard event files (outputs.tensorboard)

    The no-distillation baseline of a run is its sibling folder `supervised`."""

    RUN_JSON, CONFIG, LOG, CHECKPOINT, BEST, MMPOSE_CONFIG, REPORT, METRICS = (
        'run.json', 'pipeline_config.py', 'log.jsonl', 'last.pth', 'best.pth', 'student_config.py', 'report',
        'metrics.json')

    def __init__(self, path):
        self.path = Path(path)
        self.run_json, self.config, self.log_path = (self.path / n for n in (self.RUN_JSON, self.CONFIG, self.LOG))
        self.checkpoint, self.mmpose_config = self.path / self.CHECKPOINT, self.path / self.MMPOSE_CONFIG
        self.best = self.path / self.BEST
        self.report = self.path / self.REPORT
        self.tensorboard = self.path / 'tb'
        self.metrics = self.report / self.METRICS

    def baseline(self) -> 'RunFolder':
        return RunFolder(self.path.parent / 'supervised')

    def read_run(self) -> dict:
        if not self.run_json.is_file():
            raise FileNotFoundError(f'{self.run_json}: not a training run (no run.json)')
        return json.loads(self.run_json.read_text())

    def load_config(self, overrides: dict | None = None) -> Config:
        """The pipeline config the run trained with (its own copy, wherever the folder now lies)."""
        return load_config(self.config, overrides)

    def model_config(self) -> Path:
        """The model config of what the run trained."""
        return resolve(self.read_run()['model_config'])

    def read_log(self) -> list[dict]:
        if not self.log_path.is_file():
            return []
        return [json.loads(x) for x in self.log_path.read_text().splitlines() if x.strip()]

    def checkpoints(self) -> list[str]:
        """The checkpoints in the folder (last.pth, best.pth): what makes it hold a run, one a new run
        must not replace unasked. A run that failed before its first checkpoint left at most run.json,
        the config and a few log lines, nothing to resume: a new run replaces them."""
        return [p.name for p in (self.checkpoint, self.best) if p.exists()]

    def finished(self, epochs: int) -> bool:
        log = self.read_log()
        return self.checkpoint.exists() and bool(log) and log[-1].get('epoch') == int(epochs)

    def start(self, cfg: Config, resume: bool, run: dict) -> None:
        """A new run empties the log; the config and run.json are (re)written either way. run.json's
        `config` is the folder's own copy, named relative to it; `source_config` the file it came from."""
        if not resume:
            self.log_path.write_text('')
            self.best.unlink(missing_ok=True)
        source = cfg.pop('config_path', None)  # where it was read from: not part of what trained
        try:
            cfg.dump(str(self.config))
            # mmengine writes dict keys sorted; the datasets' config order is the union's joint order
            # (data.skeletons.derive_union) and part of the view seeds, so it is written back as it was
            with open(self.config, 'a') as f:
                f.write(f'\n# the datasets in config order (the union of their joints follows it)\n'
                        f'datasets = {{name: datasets[name] for name in {list(cfg.datasets)!r}}}\n')
        finally:
            if source is not None:
                cfg.config_path = source
        run = dict(run, config=self.CONFIG, source_config=repo_relative(source) if source else None)
        with open(self.run_json, 'w') as f:
            json.dump(run, f, indent=1)

    def log(self, record: dict) -> None:
        from outputs.files import finite
        with open(self.log_path, 'a') as f:
            f.write(json.dumps(finite(record)) + '\n')

    def save(self, model, optimizer, ema, epoch: int, step: int, meta: dict) -> None:
        """EMA weights as the checkpoint's state_dict (what is evaluated and exported), plus the state
        a resumed run continues from bit for bit."""
        from teachers.checkpoints import save_checkpoint
        save_checkpoint(self.checkpoint, ema.module.state_dict(), meta,
                        train_state=dict(model=model.state_dict(), optimizer=optimizer.state_dict(),
                                         ema=ema.state_dict(), torch_rng=torch.get_rng_state(),
                                         epoch=epoch, step=step))

    def best_score(self, key: str) -> float:
        """The best val score by `key` logged so far (a resumed run keeps its best), or -inf."""
        return max([r['best']['value'] for r in self.read_log() if r.get('best', {}).get('metric') == key],
                   default=float('-inf'))

    def save_best(self, ema, meta: dict) -> None:
        from teachers.checkpoints import save_checkpoint
        save_checkpoint(self.best, ema.module.state_dict(), meta)

    def scored_checkpoint(self) -> tuple[Path, str]:
        """The checkpoint a report scores and how to name it: best.pth when the run kept one (mmpose
        reports its save_best checkpoint), else last.pth."""
        best = [r['best'] for r in self.read_log() if 'best' in r]
        if self.best.exists() and best:
            best = best[-1]
            return self.best, f"best.pth (epoch {best['epoch']}, {best['metric']} {100 * best['value']:.1f})"
        log = self.read_log()
        return self.checkpoint, f"last.pth (epoch {log[-1]['epoch'] if log else '?'})"

    def resume(self, model, optimizer, ema) -> tuple[int, int]:
        """Load the resume state into model, optimizer and EMA; returns (epoch, step) reached."""
        from teachers.checkpoints import load_checkpoint
        if not self.checkpoint.exists():
            raise FileNotFoundError(f'{self.checkpoint}: nothing to resume from')
        state = load_checkpoint(self.checkpoint)['train_state']
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        ema.load_state_dict(state['ema'])
        torch.set_rng_state(state['torch_rng'])
        return int(state['epoch']), int(state['step'])
