"""Command line of the distillation pipeline. Each command parses options and calls one stage function.

    python cli.py make-synthetic --out data/synthetic
    python cli.py dump-teachers  --config pipeline/configs/demo_synthetic.py
    python cli.py train-student  --config pipeline/configs/demo_synthetic.py
    python cli.py export-report  --run outputs/demo/student
"""
from __future__ import annotations

import click

CONFIG = click.option('--config', 'config_path', required=True, type=click.Path(exists=True, dir_okay=False),
                      help='pipeline config (mmengine.Config file), e.g. pipeline/configs/demo_synthetic.py')
DEVICE = click.option('--device', default=None, help='cuda | cpu | cuda:1 (default: cuda if available)')


@click.group(context_settings={'help_option_names': ['-h', '--help']})
def cli():
    """Offline two-stage distillation of two RTMPose teachers (COCO-17, MPII-16) into one union-21 student."""


@cli.command('make-synthetic')
@click.option('--out', default='data/synthetic', show_default=True, type=click.Path(file_okay=False))
@click.option('--images', 'n_images', default=1000, show_default=True, help='images per dataset style')
@click.option('--seed', default=0, show_default=True)
def make_synthetic_cmd(out, n_images, seed):
    """Write the synthetic twin datasets (COCO-style + MPII-style, full 21-joint truth aside)."""
    from data.synthetic import make_synthetic
    summary = make_synthetic(out, n_images=n_images, seed=seed)
    click.echo(summary)


@cli.command('dump-teachers')
@CONFIG
@click.option('--split', type=click.Choice(['train', 'val']), default='train', show_default=True)
@click.option('--views', 'num_views', type=int, default=None, help='views per instance (default: config; val: 1)')
@click.option('--teachers', 'teacher_names', default=None, help='comma-separated subset, e.g. coco,mpii')
@DEVICE
@click.option('--batch-size', type=int, default=None)
@click.option('--num-workers', type=int, default=None)
@click.option('--resume/--no-resume', default=True, show_default=True,
              help='continue an existing cache whose manifest matches (else refuse); --no-resume starts over')
def dump_teachers_cmd(config_path, split, num_views, teacher_names, device, batch_size, num_workers, resume):
    """Stage one: run every teacher on every crop and view; store SimCC targets in Zarr."""
    from pipeline.config import load_config
    from stages.dump import dump_teachers
    cfg = load_config(config_path)
    dump_teachers(cfg, split=split, num_views=num_views,
                  teacher_names=teacher_names.split(',') if teacher_names else None,
                  device=device, batch_size=batch_size, num_workers=num_workers, resume=resume)


@cli.command('cache-fidelity')
@CONFIG
@click.option('--split', type=click.Choice(['train', 'val']), default='train', show_default=True)
@click.option('--samples', type=int, default=256, show_default=True)
@DEVICE
def cache_fidelity_cmd(config_path, split, samples, device):
    """Recompute the fidelity of a cache: reconstructed rows vs the live teachers on the same views."""
    from pipeline.config import load_config
    from stages.dump import cache_fidelity
    click.echo(cache_fidelity(load_config(config_path), split=split, samples=samples, device=device))


@cli.command('train-student')
@CONFIG
@click.option('--mode', type=click.Choice(['offline', 'online', 'supervised']), default='offline', show_default=True)
@click.option('--epochs', type=int, default=None)
@click.option('--batch-size', type=int, default=None)
@DEVICE
@click.option('--resume', is_flag=True, help='continue from the last checkpoint in the work dir')
@click.option('--work-dir', default=None, help='default: <config work_dir>/<mode>')
@click.option('--as-teacher', default=None,
              help='train teacher NAME (its own model and dataset, ground truth only) instead of the student')
@click.option('--num-workers', type=int, default=None)
def train_student_cmd(config_path, mode, epochs, batch_size, device, resume, work_dir, as_teacher, num_workers):
    """Stage two: train the union-21 student from the cache (no teacher runs)."""
    from pipeline.config import load_config
    from stages.train import train
    cfg = load_config(config_path)
    train(cfg, mode=mode, epochs=epochs, batch_size=batch_size, device=device, resume=resume,
          work_dir=work_dir, as_teacher=as_teacher, num_workers=num_workers)


@cli.command('export-report')
@click.option('--run', 'run_dir', required=True, type=click.Path(exists=True, file_okay=False),
              help='a finished train-student work dir, e.g. outputs/demo/offline')
@click.option('--out', default=None, help='default: <run>/report')
@click.option('--formats', default='html,md,json,h5', show_default=True)
@click.option('--onnx', is_flag=True, help='also export the student to ONNX and check it with onnxruntime')
@DEVICE
def export_report_cmd(run_dir, out, formats, onnx, device):
    """Evaluate student, baseline and teachers; write the report; export the student."""
    from stages.report import export_report
    path = export_report(run_dir, out=out, formats=formats.split(','), onnx=onnx, device=device)
    click.echo(f'report: {path}')


@cli.command('demo')
@CONFIG
def demo_cmd(config_path):
    """The whole pipeline on the synthetic default: data, small teachers, dump, students, report."""
    from stages.demo import run_demo
    run_demo(config_path)


if __name__ == '__main__':
    cli()
