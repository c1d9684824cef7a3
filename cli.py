"""Command line of the distillation pipeline. Each command parses options and calls one stage function.

    python cli.py make-synthetic --out data/synthetic
    python cli.py dump-teachers  --config pipeline/configs/demo_synthetic.py
    python cli.py cache-verify   --config pipeline/configs/demo_synthetic.py
    python cli.py train-student  --config pipeline/configs/demo_synthetic.py
    python cli.py export-report  --run outputs/demo/student
"""
from __future__ import annotations

import sys

import click

CONFIG = click.option('--config', 'config_path', required=True, type=click.Path(exists=True, dir_okay=False),
                      help='pipeline config (mmengine.Config file), e.g. pipeline/configs/demo_synthetic.py')
DEVICE = click.option('--device', default=None, help='cuda | cpu | cuda:1 (default: cuda if available)')
CFG_FLAG = '--cfg-options'
CFG_OPTIONS = click.option(CFG_FLAG, 'cfg_options', multiple=True, metavar='KEY=VALUE ...',
                           help='override config keys, mmengine style: --cfg-options train.epochs=3 train.overlap=mean '
                                '(several after one flag, or the flag repeated; values are Python literals, else '
                                'strings)')


def spread_cfg_options(args: list[str]) -> list[str]:
    """mmengine's `--cfg-options a=1 b=2` (argparse nargs='+') as click's repeated option
    `--cfg-options a=1 --cfg-options b=2`: the KEY=VALUE words after the flag's own value, up to the
    next option, each get their own flag. A word without '=' ends the list, so a command's argument
    may follow (`predict --cfg-options a=1 image.jpg`)."""
    out, listing = [], False
    for word in args:
        if listing and '=' in word and not word.startswith('-'):
            out += [CFG_FLAG, word]
            continue
        # `word` is the flag's own value (or holds it): KEY=VALUE words may follow
        listing = out[-1:] == [CFG_FLAG] or word.startswith(CFG_FLAG + '=')
        out.append(word)
    return out


def read_config(config_path, cfg_options=()):
    """The pipeline config with --cfg-options applied, validated like the file itself."""
    from pipeline.config import load_config, parse_cfg_options
    return load_config(config_path, parse_cfg_options(cfg_options))


class PipelineCli(click.Group):
    """Expected failures (bad input, a stale cache, a full disk) end in one line naming the file or
    key and the problem, exit code 1; the traceback only with --debug."""

    def parse_args(self, ctx, args):
        # the group sees the subcommand's words too: one place gives every command the mmengine form
        return super().parse_args(ctx, spread_cfg_options(args))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as err:  # noqa: BLE001 - every error gets its one line; --debug shows the rest
            end_progress_bars()
            if ctx.params.get('debug'):
                raise
            click.echo(f'Error: {error_line(err)}', err=True)
            ctx.exit(1)


def end_progress_bars() -> None:
    """A failing step leaves its tqdm bar open, the cursor after it mid-line: close each bar where it
    stopped (kept on screen: it says how far the run got), which ends its line, so the error that
    follows starts its own."""
    tqdm = sys.modules.get('tqdm')
    if tqdm is None:  # never imported: no bar was made
        return
    for bar in list(tqdm.tqdm._instances):  # the open bars (tqdm's own registry)
        bar.leave = True
        bar.close()


def error_line(err: Exception) -> str:
    import errno
    text = ' '.join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES):
        return f'{err.filename or ""}: {err.strerror}'.lstrip(': ')
    if isinstance(err, (OSError, ValueError, RuntimeError, KeyError, LookupError)):
        return text
    return f'{type(err).__name__}: {text} (unexpected; run with --debug for the traceback)'


@click.group(cls=PipelineCli, context_settings={'help_option_names': ['-h', '--help']})
@click.option('--debug', is_flag=True, help='show the full traceback of an error')
def cli(debug):
    """Offline two-stage distillation of RTMPose teachers (one per dataset: COCO-17, MPII-16, AIC-14, ...) into
    one student on the union of their joints."""


@cli.command('make-synthetic')
@click.option('--out', default='data/synthetic', show_default=True, type=click.Path(file_okay=False))
@click.option('--images', 'n_images', default=1000, show_default=True, help='images per dataset style')
@click.option('--seed', default=0, show_default=True)
@click.option('--styles', default='coco,mpii', show_default=True, help='comma-separated twins: coco, mpii, aic')
def make_synthetic_cmd(out, n_images, seed, styles):
    """Write the synthetic twin datasets (COCO-, MPII-, AIC-style; their full truth aside)."""
    from data.twins import make_synthetic
    summary = make_synthetic(out, n_images=n_images, seed=seed, styles=tuple(styles.split(',')))
    click.echo(summary)


@cli.command('dump-teachers')
@CONFIG
@CFG_OPTIONS
@click.option('--split', type=click.Choice(['train', 'val']), default='train', show_default=True)
@click.option('--views', 'num_views', type=int, default=None, help='stage-1 views per train instance (default: views.num_views; val: the un-augmented crop and its mirror)')
@click.option('--teachers', 'teacher_names', default=None, help='comma-separated subset, e.g. coco,mpii')
@DEVICE
@click.option('--batch-size', type=int, default=None)
@click.option('--num-workers', type=int, default=None)
@click.option('--resume/--no-resume', default=True, show_default=True,
              help='continue an existing cache whose manifest matches (else refuse); --no-resume starts over')
@click.option('--strict', is_flag=True, help='a bad annotation record is an error (default: skipped and counted)')
def dump_teachers_cmd(config_path, cfg_options, split, num_views, teacher_names, device, batch_size, num_workers,
                      resume, strict):
    """Stage one: run every teacher on every crop and view; store SimCC targets in Zarr."""
    from stages.dump import dump_teachers
    cfg = read_config(config_path, cfg_options + (('strict_input=True',) if strict else ()))
    dump_teachers(cfg, split=split, num_views=num_views,
                  teacher_names=teacher_names.split(',') if teacher_names else None,
                  device=device, batch_size=batch_size, num_workers=num_workers, resume=resume)


@cli.command('cache-fidelity')
@CONFIG
@CFG_OPTIONS
@click.option('--split', type=click.Choice(['train', 'val']), default='train', show_default=True)
@click.option('--samples', type=int, default=256, show_default=True)
@DEVICE
def cache_fidelity_cmd(config_path, cfg_options, split, samples, device):
    """Recompute the fidelity of a cache: reconstructed rows vs the live teachers on the same views."""
    from stages.dump import cache_fidelity
    click.echo(cache_fidelity(read_config(config_path, cfg_options), split=split, samples=samples, device=device))


@cli.command('cache-verify')
@CONFIG
@CFG_OPTIONS
@click.option('--split', type=click.Choice(['train', 'val']), default='train', show_default=True)
def cache_verify_cmd(config_path, cfg_options, split):
    """Check every chunk of a cache against its checksum, read-only (e.g. after copying it between machines)."""
    from stages.dump import verify_cache
    verify_cache(read_config(config_path, cfg_options), split=split)


@cli.command('train-student')
@CONFIG
@CFG_OPTIONS
@click.option('--mode', type=click.Choice(['offline', 'online', 'supervised']), default='offline', show_default=True)
@click.option('--epochs', type=int, default=None)
@click.option('--batch-size', type=int, default=None)
@DEVICE
@click.option('--resume', is_flag=True, help='continue from the last checkpoint in the work dir')
@click.option('--work-dir', default=None, help='default: <config work_dir>/<mode>')
@click.option('--as-teacher', default=None,
              help='train teacher NAME (its own model and dataset, ground truth only) instead of the student')
@click.option('--num-workers', type=int, default=None)
@click.option('--overwrite', is_flag=True, help='replace a run already in the work dir (else refused)')
def train_student_cmd(config_path, cfg_options, mode, epochs, batch_size, device, resume, work_dir, as_teacher,
                      num_workers, overwrite):
    """Stage two: train the student on the datasets' union skeleton from the cache (no teacher runs)."""
    from stages.train import train
    cfg = read_config(config_path, cfg_options)
    train(cfg, mode=mode, epochs=epochs, batch_size=batch_size, device=device, resume=resume,
          work_dir=work_dir, as_teacher=as_teacher, num_workers=num_workers, overwrite=overwrite)


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


@cli.command('predict')
@click.argument('source', type=click.Path(exists=True))
@click.option('--run', 'run_dir', type=click.Path(exists=True, file_okay=False), help='a train-student work dir')
@click.option('--config', 'model_config', type=click.Path(exists=True, dir_okay=False),
              help='instead of --run: an mmpose-style model config (e.g. an export\'s student_config.py)')
@click.option('--checkpoint', type=click.Path(exists=True, dir_okay=False), help='with --config')
@click.option(CFG_FLAG, 'cfg_options', multiple=True, metavar='KEY=VALUE ...',
              help="override keys of the model config (--config's or the run's), mmengine style: "
                   '--cfg-options model.data_preprocessor.bgr_to_rgb=False (several after one flag, or repeated)')
@click.option('--out', required=True, type=click.Path(file_okay=False), help='where pictures + predictions.json go')
@click.option('--det-file', type=click.Path(exists=True, dir_okay=False),
              help='person detections, COCO results format (image_id = the digits of the file name)')
@click.option('--det-score-thr', default=0.3, show_default=True)
@click.option('--bbox', 'bboxes', multiple=True, metavar='X1,Y1,X2,Y2', help='a person box for every image (repeatable)')
@click.option('--radius', default=3, show_default=True, help='joint radius in pixels')
@click.option('--thickness', default=2, show_default=True, help='bone thickness in pixels')
@click.option('--score-thr', default=0.3, show_default=True, help='joints scored below are not drawn')
@click.option('--flip-test/--no-flip-test', default=None,
              help="average with the mirrored crop (default: the run's evaluation.flip_test, or the model "
                   "config's test_cfg.flip_test)")
@DEVICE
def predict_cmd(source, run_dir, model_config, checkpoint, cfg_options, out, det_file, det_score_thr, bboxes, radius,
                thickness, score_thr, flip_test, device):
    """Draw what a trained student sees on an image or a folder (boxes: detections, --bbox, or the whole image)."""
    from pipeline.config import parse_cfg_options
    from stages.predict import load_predictor, predict_images
    boxes = []
    for b in bboxes:
        try:
            boxes.append([float(v) for v in b.split(',')])
        except ValueError:
            raise click.BadParameter(f'{b!r}: expected X1,Y1,X2,Y2', param_hint='--bbox') from None
        if len(boxes[-1]) != 4:
            raise click.BadParameter(f'{b!r}: expected X1,Y1,X2,Y2', param_hint='--bbox')
    model, configured_flip, skeleton = load_predictor(run_dir, model_config, checkpoint, device,
                                                      parse_cfg_options(cfg_options))
    predict_images(model, skeleton, source, out, det_file=det_file, bboxes=boxes, det_score_thr=det_score_thr,
                   radius=radius, thickness=thickness, score_thr=score_thr,
                   flip_test=configured_flip if flip_test is None else flip_test)


@cli.command('demo')
@CONFIG
@CFG_OPTIONS
def demo_cmd(config_path, cfg_options):
    """The whole pipeline on the synthetic default: data, dump of the shipped teachers, students, report."""
    from stages.demo import run_demo
    run_demo(config_path, cfg_options)


@cli.command('demo-teachers')
@CONFIG
@CFG_OPTIONS
@click.option('--eval-config', required=True, type=click.Path(exists=True, dir_okay=False),
              help='the demo config whose val split scores the teachers (both twins)')
@click.option('--out', default='teachers/demo', show_default=True, help='where the shipped files go')
@click.option('--seed', type=int, default=None,
              help="another seed than the config's: its runs go under <work_dir>/seed<S> (robustness checks)")
def demo_teachers_cmd(config_path, cfg_options, eval_config, out, seed):
    """Train the demo teachers from scratch (ground truth, own twin) and package them for shipping."""
    from stages.demo import build_demo_teachers, reseeded
    if seed is not None:
        cfg_options = tuple(cfg_options) + reseeded(read_config(config_path, cfg_options), seed)
    build_demo_teachers(config_path, cfg_options, eval_config, out)


if __name__ == '__main__':
    cli()
