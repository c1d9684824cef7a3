"""Forward throughput of the native RTMPose against mmpose's, side by side (CPU, eval, no_grad).

    .venv/bin/python benchmarks/model_forward.py [--variants t,s,m] [--batch 32] [--rounds 3]
                                                 [--iters 3] [--threads N] [--demo-train]

mmpose runs in the reference environment (.venv-mmpose or MMPOSE_REF_PYTHON) as a worker process
(scripts/mmpose_reference.py serve); both sides use the same thread count, input shape and batch,
and the timed blocks alternate native / mmpose round by round (the order flips every round) so
load drift on the machine hits both. images/s = batch / median seconds per forward.
--demo-train adds forward+backward+AdamW images/s at batch 64 for the demo configs (native only).
The last stdout line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from teachers.rtmpose import build_model  # noqa: E402

OUR_CONFIGS = {'t': 'rtmpose-t_union21_256x192.py', 's': 'rtmpose-s_union21_256x192.py',
               'm': 'rtmpose-m_coco17_256x192.py'}
DEMO_CONFIGS = ['rtmpose-demo_coco17_128x96.py', 'rtmpose-demo_mpii16_128x128.py',
                'rtmpose-demo_union21_128x96.py']
REF_PYTHON = Path(os.environ.get('MMPOSE_REF_PYTHON', ROOT / '.venv-mmpose' / 'bin' / 'python'))


class MmposeWorker:
    def __init__(self, python: Path):
        self.proc = subprocess.Popen(
            [str(python), str(ROOT / 'scripts' / 'mmpose_reference.py'), 'serve'],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def ask(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + '\n')
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError('mmpose worker exited (run scripts/mmpose_reference.py serve by hand)')
        return json.loads(line)

    def close(self) -> None:
        try:
            self.ask(cmd='quit')
        except (BrokenPipeError, RuntimeError, json.JSONDecodeError):
            pass
        self.proc.wait(timeout=30)


def time_native(model, x, iters: int) -> list[float]:
    times = []
    with torch.no_grad():
        for _ in range(iters):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return times


def demo_train_throughput(batch: int, iters: int) -> dict:
    figures = {}
    for name in DEMO_CONFIGS:
        torch.manual_seed(0)
        model = build_model(ROOT / 'pipeline' / 'configs' / 'models' / name).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        w, h = model.input_size
        x = torch.randn(batch, 3, h, w)
        times = []
        for i in range(iters + 1):  # the first step warms up allocators and is not counted
            t0 = time.perf_counter()
            sx, sy = model(x)
            loss = sx.logsumexp(-1).mean() + sy.logsumexp(-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - t0)
        figures[name] = round(batch / statistics.median(times), 2)
        print(f'demo train {name}: {figures[name]} images/s (batch {batch})', flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--variants', default='t,s,m')
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--demo-train', action='store_true')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = [v for v in args.variants.split(',') if v]

    worker = MmposeWorker(REF_PYTHON) if REF_PYTHON.exists() else None
    native, samples = {}, {v: {'native': [], 'mmpose': []} for v in variants}
    inputs = {}
    for v in variants:
        torch.manual_seed(0)
        native[v] = build_model(ROOT / 'pipeline' / 'configs' / 'models' / OUR_CONFIGS[v]).eval()
        w, h = native[v].input_size
        inputs[v] = torch.randn(args.batch, 3, h, w)
        time_native(native[v], inputs[v], 1)  # warm-up
        if worker:
            worker.ask(cmd='build', variant=v, batch=args.batch, threads=args.threads)
            worker.ask(cmd='time', variant=v, iters=1)  # warm-up
    for r in range(args.rounds):
        for v in variants:
            order = ('native', 'mmpose') if r % 2 == 0 else ('mmpose', 'native')
            for side in order:
                if side == 'native':
                    samples[v]['native'] += time_native(native[v], inputs[v], args.iters)
                elif worker:
                    samples[v]['mmpose'] += worker.ask(cmd='time', variant=v, iters=args.iters)['seconds']
    if worker:
        worker.close()

    result = {'benchmark': 'model_forward', 'device': 'cpu', 'cpu': platform.processor() or platform.machine(),
              'threads': args.threads, 'batch': args.batch, 'rounds': args.rounds, 'iters': args.iters,
              'torch': torch.__version__, 'mmpose_reference': str(REF_PYTHON) if worker else None,
              'variants': {}}
    for v in variants:
        nat = args.batch / statistics.median(samples[v]['native'])
        ref = args.batch / statistics.median(samples[v]['mmpose']) if samples[v]['mmpose'] else None
        result['variants'][v] = {'native_images_per_s': round(nat, 2),
                                 'mmpose_images_per_s': round(ref, 2) if ref else None,
                                 'ratio_native_over_mmpose': round(nat / ref, 3) if ref else None}
        print(f'{v}: native {nat:.1f} img/s, mmpose '
              f'{f"{ref:.1f} img/s, ratio {nat / ref:.3f}" if ref else "n/a (no reference env)"}',
              flush=True)
    if args.demo_train:
        result['demo_train_images_per_s_batch64'] = demo_train_throughput(64, 3)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
