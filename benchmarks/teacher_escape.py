"""Does a demo teacher leave the mean pose? The demo teacher as configured (stride 16) vs with RTMPose's
usual fourth CSPNeXt stage (stride 32), trained side by side through the train stage itself.

    .venv/bin/python benchmarks/teacher_escape.py [--teacher coco] [--epochs E] [--out outputs/teacher_escape]

Why: trained from scratch for the demo's ~1500 CPU steps, a tiny RTMPose can sit at the mean pose
(every joint at its average crop position) for the whole run. The demo models keep three CSPNeXt
stages (mmdet's arch_ovewrite) so that the head reads a stride-16 map; this measures that choice.

What runs: `cli.py train-student --mode supervised --as-teacher NAME` (ground truth only, the demo
config's teacher_train schedule, its lr, seed and data) twice, one process and one thread each:
  stride16  the demo config unchanged;
  stride32  the same config whose teacher model drops arch_ovewrite, reads stage 4 (out_indices (4,),
            in_channels 256 at widen 0.25) with in_featuremap_size = input / 32.
Data: the teacher config's synthetic twins (`make demo-teachers` makes them).
Reported per variant, from each run's log.jsonl: val PCK@0.5 (head-normalised, the teacher's own
joints, against the twins' truth) at every validation epoch; the first step at which it exceeds the
first validation's PCK by 10 points (`left_mean_pose_at`, None if never).
The last stdout line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEMO_CONFIG = 'pipeline/configs/demo_teachers.py'  # the config that trains the demo teachers


def stride32_model_config(path: Path, out: Path) -> Path:
    """The model config at `path` with P5's fourth stage back (head on the stride-32 map)."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(path))
    bb, head = cfg.model.backbone, cfg.model.head
    bb.pop('arch_ovewrite', None)
    bb.out_indices = (4,)
    head.in_channels = int(1024 * bb.widen_factor)
    head.in_featuremap_size = tuple(s // 32 for s in cfg.codec.input_size)
    cfg.dump(str(out))
    return out


def curve(folder, dataset: str) -> list[dict]:
    out = []
    for r in folder.read_log():
        if 'val' in r:
            out.append(dict(epoch=r['epoch'], step=r['step'], loss=round(r['loss_total'], 4),
                            pck=round(100 * r['val'][dataset]['pck_truth']['all'], 1)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=DEMO_CONFIG)
    p.add_argument('--teacher', default='coco')
    p.add_argument('--epochs', type=int, default=None, help='default: the config\'s teacher_train.epochs')
    p.add_argument('--out', default='outputs/teacher_escape')
    a = p.parse_args()
    from pipeline.config import load_config, resolve
    from pipeline.run_folder import RunFolder
    cfg = load_config(resolve(a.config))
    out = resolve(a.out)
    out.mkdir(parents=True, exist_ok=True)
    teacher = cfg.teachers[a.teacher]
    dataset = teacher.dataset
    configs = {}
    for variant in ('stride16', 'stride32'):
        c = load_config(resolve(a.config))
        if variant == 'stride32':
            c.teachers[a.teacher].config = str(stride32_model_config(resolve(teacher.config),
                                                                     out / 'model_stride32.py'))
        c.teachers[a.teacher].checkpoint = str(RunFolder(out / variant).checkpoint)
        configs[variant] = out / f'config_{variant}.py'
        c.dump(str(configs[variant]))
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    procs = {}
    for variant, path in configs.items():
        cmd = [sys.executable, str(ROOT / 'cli.py'), 'train-student', '--config', str(path), '--mode',
               'supervised', '--as-teacher', a.teacher, '--work-dir', str(out / variant)]
        if a.epochs:
            cmd += ['--epochs', str(a.epochs)]
        print(' '.join(cmd), flush=True)
        procs[variant] = subprocess.Popen(cmd, env=env, stdout=open(out / f'{variant}.log', 'w'),
                                          stderr=subprocess.STDOUT)
    figures = {}
    for variant, proc in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f'{variant} failed: see {out / (variant + ".log")}')
        c = curve(RunFolder(out / variant), dataset)
        left = [e['step'] for e in c if e['pck'] >= c[0]['pck'] + 10]
        figures[variant] = dict(curve=c, final_pck=c[-1]['pck'], left_mean_pose_at=left[0] if left else None)
        print(f'{variant}: val PCK@0.5 by step ' + '  '.join(f'{e["step"]}:{e["pck"]}' for e in c)
              + f'  (left the mean pose at step {figures[variant]["left_mean_pose_at"]})')
    print(json.dumps(dict(benchmark='teacher_escape', config=a.config, teacher=a.teacher, variants=figures)))


if __name__ == '__main__':
    main()
