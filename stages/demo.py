"""`make demo` and `make demo-teachers`.

`make demo`: the whole pipeline on the synthetic default, each step skipped when its output exists.
  1. synthetic twin datasets                    data/synthetic
  2. the shipped files, checked (sha256)        teachers/demo/{coco,mpii,student_init}.pth + manifest.json
  3. dump-teachers (train + val)                outputs/demo/cache/{train,val}.zarr
  4. students: offline KD + baseline            outputs/demo/{offline,supervised}
  5. export-report                              outputs/demo/offline/report/report.html

`make demo-teachers`: how the shipped files were made (the demo never runs this): their own
synthetic set, the teachers and the student's starting point (`pretrain`) trained on ground truth of
their own twin (a model with `init_backbone` after the one it starts from), then each
EMA checkpoint stored in fp16 with its training log, scored on the demo's val split (both twins),
and listed in the manifest with its sha256, size, FLOPs, the command and the wall time.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from pipeline.config import load_config, parse_cfg_options, resolve
from pipeline.run_folder import RunFolder


def _step(timings: dict, name: str, fn, done: bool) -> None:
    if done:
        print(f'== {name}: already done, skipped')
        return
    print(f'== {name}')
    t = time.perf_counter()
    fn()
    timings[name] = round(time.perf_counter() - t, 1)
    print(f'== {name}: {timings[name]} s')


def _make_data(cfg, timings: dict) -> None:
    from data.twins import make_synthetic
    syn = cfg.synthetic
    out = resolve(syn.out)
    styles = tuple(dict.fromkeys(ds.type for ds in cfg.datasets.values()))  # a twin per dataset type
    _step(timings, f'make-synthetic {syn.out}',
          lambda: make_synthetic(out, n_images=int(syn.images), seed=int(syn.seed), styles=styles),
          all(resolve(f).exists() for ds in cfg.datasets.values()
              for f in [ds.val.ann_file, *(ds.get('truth') or {}).values()]))


def run_cli(args: list[str]) -> None:
    """`python cli.py ARGS` in a child process, its output on this console: the demo runs each stage as
    the command a user would type (and imports no stage)."""
    print('   python cli.py ' + shlex.join(args), flush=True)
    subprocess.run([sys.executable, str(resolve('cli.py')), *args], check=True)


def run_demo(config_path: str, cfg_options=()) -> None:
    from teachers.shipped import verify_shipped

    t0 = time.perf_counter()
    cfg = load_config(config_path, parse_cfg_options(cfg_options))
    timings = {}
    shipped = {f'teacher {n}': t.checkpoint for n, t in cfg.teachers.items()}
    if cfg.student.init_backbone:
        shipped['student backbone'] = cfg.student.init_backbone
    for what, path in shipped.items():  # before any work: a missing or altered file stops the demo
        entry = verify_shipped(resolve(path))
        print(f'== {what}: {path} matches its manifest (sha256 {entry["sha256"][:12]}...)')
    _make_data(cfg, timings)
    work = resolve(cfg.work_dir)
    extra = [a for o in cfg_options for a in ('--cfg-options', o)]
    for split in ('train', 'val'):
        _step(timings, f'dump-teachers {split}',
              lambda split=split: run_cli(['dump-teachers', '--config', config_path, '--split', split, *extra]),
              _dump_complete(cfg, split))
    # The two trainings are independent: side by side, one process and one thread each (on a shared
    # 2-core machine a 2-thread torch process next to other work was seen to slow down many-fold per step).
    modes = [m for m in ('offline', 'supervised') if not RunFolder(work / m).finished(cfg.train.epochs)]
    _step(timings, 'train-student ' + ','.join(modes),
          lambda: run_parallel([['train-student', '--config', config_path, '--mode', m, *extra] for m in modes],
                               work / 'logs'), not modes)
    _step(timings, 'export-report', lambda: run_cli(['export-report', '--run', str(work / 'offline'), '--onnx']),
          False)
    timings['total'] = round(time.perf_counter() - t0, 1)
    (work / 'demo_timings.json').write_text(json.dumps(timings, indent=1))
    print(f'\ndemo finished in {timings["total"]:.0f} s; steps: {timings}')
    print(f'report: {RunFolder(work / "offline").report / "report.html"}')


def build_demo_teachers(config_path: str, cfg_options, eval_config_path: str, out_dir: str) -> Path:
    """Train the demo teachers and the student's starting point (config `demo_teachers.py`: `teachers`
    and `pretrain`) and package them into `out_dir`."""
    from stages.evaluation import evaluate_model
    from teachers.checkpoints import load_checkpoint, load_model, save_checkpoint, state_dict_from_checkpoint
    from teachers.rtmpose import build_model, count_flops
    from data.files import sha256_file
    from teachers.shipped import half_precision

    cfg = load_config(config_path, parse_cfg_options(cfg_options))
    eval_cfg = load_config(eval_config_path)
    timings = {}
    _make_data(cfg, timings)
    _make_data(eval_cfg, timings)
    extra = [a for o in cfg_options for a in ('--cfg-options', o)]
    models = {**cfg.teachers, **cfg.pretrain}
    for group in training_order(models):
        epochs = {n: models[n].train.get('epochs', cfg.teacher_train.epochs) for n in group}  # override or default
        todo = [n for n in group if not RunFolder(resolve(models[n].checkpoint).parent).finished(epochs[n])]
        _step(timings, 'train ' + ','.join(todo or group),
              lambda todo=todo: run_parallel([['train-student', '--config', config_path, '--mode', 'supervised',
                                               '--as-teacher', n, *extra] for n in todo],
                                             resolve(cfg.work_dir) / 'logs'), not todo)
        if not todo:  # trained by an earlier call: its logged training time stands in for the wall time
            timings[f'train {",".join(group)} (logged)'] = max(
                train_seconds(RunFolder(resolve(models[n].checkpoint).parent).read_log()) for n in group)

    out = resolve(out_dir)
    (out / 'logs').mkdir(parents=True, exist_ok=True)
    student_flops = count_flops(build_model(str(resolve(eval_cfg.student.config))))
    files = {}
    for name, t in models.items():
        run_dir = resolve(t.checkpoint).parent
        ckpt = load_checkpoint(resolve(t.checkpoint))
        target = out / f'{name}.pth'
        role = 'teacher' if name in cfg.teachers else 'pretrain'
        meta = dict(dataset_meta=ckpt['meta'].get('dataset_meta'), **{role: name}, config=str(t.config),
                    epoch=ckpt['meta'].get('epoch'), iter=ckpt['meta'].get('iter'), weights='EMA, fp16')
        save_checkpoint(target, half_precision(state_dict_from_checkpoint(ckpt)), meta)
        shutil.copyfile(RunFolder(run_dir).log_path, out / 'logs' / f'{name}.log.jsonl')
        model = load_model(resolve(t.config), target)  # scored as shipped: fp16 weights in a float32 model
        log = RunFolder(run_dir).read_log()
        files[target.name] = dict(
            role=role, sha256=sha256_file(target),
            bytes=target.stat().st_size, config=str(t.config), dataset=t.dataset,
            skeleton=model.skeleton_name, flops_per_image=count_flops(model),
            log=f'logs/{name}.log.jsonl', steps=log[-1]['step'], train_seconds=train_seconds(log),
            val_demo=_teacher_scores(evaluate_model(eval_cfg, model, device=torch.device('cpu')), t.dataset))
        print(f'== {target}: {files[target.name]["bytes"] / 1e6:.1f} MB, {json.dumps(files[target.name]["val_demo"])}')
    command = ('python cli.py demo-teachers ' + shlex.join(['--config', config_path, *extra, '--eval-config',
                                                           eval_config_path, '--out', out_dir]))
    manifest = dict(
        what='demo teachers and the demo student\'s starting backbone (role pretrain): RTMPose models '
             '(mmpose layout, EMA weights in fp16) trained by this repository',
        command=command, make_target='make demo-teachers', seed=int(cfg.seed), config=config_path,
        student_config=str(eval_cfg.student.config), student_flops_per_image=student_flops,
        wall_seconds=timings, torch=torch.__version__, machine=f'{platform.machine()}, {os.cpu_count()} cores',
        val_note='PCK@0.5 (head-normalised) against the full truth of the demo val split, on the '
                 'joints the teacher predicts: own = its own twin, cross = the other twin',
        files=files)
    from data.files import atomic_write_text
    atomic_write_text(out / 'manifest.json', json.dumps(manifest, indent=1) + '\n')
    print(f'== shipped teachers written to {out}')
    return out


def train_seconds(log: list[dict]) -> float:
    """A run's training time from its log (the epochs' seconds)."""
    return round(sum(r['seconds'] for r in log), 1)


def training_order(models: dict) -> list[list[str]]:
    """The models in groups that train side by side: a model whose backbone starts from another's
    checkpoint (init_backbone) trains in a later group than that model."""
    by_checkpoint = {str(resolve(t.checkpoint)): n for n, t in models.items()}
    parent = {n: by_checkpoint.get(str(resolve(t.init_backbone))) if t.init_backbone else None
              for n, t in models.items()}
    groups, placed = [], set()
    while len(placed) < len(models):
        group = [n for n in models if n not in placed and (parent[n] is None or parent[n] in placed)]
        if not group:
            raise ValueError('init_backbone chain with a cycle: ' + ', '.join(sorted(set(models) - placed)))
        groups.append(group)
        placed.update(group)
    return groups


def reseeded(cfg, seed: int) -> tuple[str, ...]:
    """--cfg-options for the same teacher build under another seed: work_dir and every teacher path
    inside it move to <work_dir>/seed<S>."""
    old = str(cfg.work_dir).rstrip('/')
    new = f'{old}/seed{seed}'
    opts = [f'seed={seed}', f'work_dir={new}']
    for section in ('teachers', 'pretrain'):
        for name, t in cfg[section].items():
            for key in ('checkpoint', 'init_backbone'):
                if str(t[key] or '').startswith(old + '/'):
                    opts.append(f'{section}.{name}.{key}={new}{str(t[key])[len(old):]}')
    return tuple(opts)


def _teacher_scores(metrics: dict, own: str) -> dict:
    """{'own': PCK on its own twin, 'cross': on the other twin, + AP / PCKh where computed}."""
    out = {}
    for ds, m in metrics.items():
        key = 'own' if ds == own else 'cross'
        out[f'pck_{key}'] = round(100 * m['pck_truth']['all'], 1)
        if 'coco' in m:
            out['coco_ap'] = round(100 * m['coco']['AP'], 1)
        if 'pckh@0.5' in m:
            out['pckh@0.5'] = round(100 * m['pckh@0.5']['mean'], 1)
    return out


def run_parallel(commands: list[list[str]], log_dir) -> None:
    """Run `python cli.py ...` commands side by side, the cores shared out between them (one thread
    each on 2 cores for 2 commands; OMP_NUM_THREADS, when set, wins); their output goes to log files."""
    log_dir.mkdir(parents=True, exist_ok=True)
    cli = str(resolve('cli.py'))
    threads = os.environ.get('OMP_NUM_THREADS') or str(max(1, (os.cpu_count() or 1) // max(len(commands), 1)))
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    procs = []
    for cmd in commands:
        log = log_dir / ('_'.join(c.strip('-') for c in cmd[3:] if not c.endswith('.py') and '=' not in c
                                  and c != '--cfg-options') + '.log')
        print(f'   python cli.py {shlex.join(cmd)}  (log: {log})')
        procs.append((cmd, log, subprocess.Popen([sys.executable, cli, *cmd], env=env,
                                                 stdout=open(log, 'w'), stderr=subprocess.STDOUT)))
    failed = [(cmd, log) for cmd, log, p in procs if p.wait() != 0]
    if failed:
        raise RuntimeError('failed: ' + '; '.join(f'{" ".join(c)} (see {log})' for c, log in failed))


def _dump_complete(cfg, split) -> bool:
    from pipeline.run import cache_path
    path = cache_path(cfg, split)
    if not path.exists():
        return False
    from cache.store import open_cache
    try:
        cache = open_cache(path)
    except Exception:
        return False
    return all(len(cache.pending_units(t)) == 0 for t in cache.teacher_names)
