#!/usr/bin/env bash
# The GPU benchmarks in one run, meant to take under 10 minutes on one H100/H200:
#   P1  offline KD / supervised training step, images/s     (benchmarks/train_step.py, students -s and -t)
#   P2  offline / online KD training step, images/s         (the same run)
#   AMP the student's bf16 autocast on and off               (train_step.py --amp on|off; P1/P2 are quoted at --amp on)
#   P3  full dump / teacher forward only, crops/s           (benchmarks/dump_throughput.py on a fresh synthetic
#                                                             world of $IMAGES images per twin, $VIEWS views)
# Every benchmark's output is kept under $OUT; the last stdout line is one JSON object combining their
# last lines (raw) with the figures above.
#
#   bash benchmarks/gpu_suite.sh          # on a GPU machine (env: PY, OUT, IMAGES=600, VIEWS=4, WORKERS=8,
#                                         #   WRITERS=6: dump_stage.writers, the encoding's processes)
#   bash benchmarks/gpu_suite.sh --toy    # the same steps at toy size on the CPU (tests/test_gpu_suite.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-outputs/bench/gpu_suite}
if [[ "${1:-}" == "--toy" ]]; then
    DEVICE=cpu; TRAIN_ARGS=(--quick --students t); IMAGES=${IMAGES:-4}; VIEWS=${VIEWS:-1}; WORKERS=${WORKERS:-0}
    WRITERS=${WRITERS:-1}
elif [[ -z "${1:-}" ]]; then
    DEVICE=cuda; TRAIN_ARGS=(--students s,t); IMAGES=${IMAGES:-600}; VIEWS=${VIEWS:-4}; WORKERS=${WORKERS:-8}
    WRITERS=${WRITERS:-6}
else
    echo "gpu_suite.sh: unknown argument '$1' (only --toy)" >&2; exit 2
fi
START=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"

# P1, P2, AMP
for AMP in on off; do
    echo "== train_step --amp $AMP" >&2
    "$PY" benchmarks/train_step.py --device "$DEVICE" "${TRAIN_ARGS[@]}" --amp "$AMP" > "$OUT/train_step_amp_$AMP.log"
    tail -n 1 "$OUT/train_step_amp_$AMP.log" > "$OUT/train_step_amp_$AMP.json"
done

# P3: the demo config re-rooted on a synthetic world of its own (the user's data/synthetic is not touched)
echo "== dump_throughput ($IMAGES images per twin, $VIEWS views)" >&2
"$PY" cli.py make-synthetic --out "$OUT/synthetic" --images "$IMAGES" --seed 0 > "$OUT/make_synthetic.log"
sed -e "s#^_data = 'data/synthetic'#_data = '$OUT/synthetic'#" -e "s#'outputs/demo#'$OUT/demo#g" \
    pipeline/configs/demo_synthetic.py > "$OUT/config.py"
grep -q "^_data = '$OUT/synthetic'" "$OUT/config.py" || {
    echo "gpu_suite.sh: pipeline/configs/demo_synthetic.py has no line _data = 'data/synthetic' to re-root" >&2; exit 1; }
"$PY" benchmarks/dump_throughput.py --config "$OUT/config.py" --views "$VIEWS" --device "$DEVICE" \
    --num-workers "$WORKERS" --writers "$WRITERS" --out "$OUT/dump" > "$OUT/dump_throughput.log"
tail -n 1 "$OUT/dump_throughput.log" > "$OUT/dump_throughput.json"

"$PY" - "$OUT" "$(( $(date +%s) - START ))" <<'EOF'
import json
import sys
from pathlib import Path

out, seconds = Path(sys.argv[1]), int(sys.argv[2])
on, off = (json.loads((out / f'train_step_amp_{a}.json').read_text()) for a in ('on', 'off'))
dump = json.loads((out / 'dump_throughput.json').read_text())
students = sorted(on['students'])
ips = lambda r, s, mode: r['students'][s]['modes'][mode]['images_per_s']
result = dict(
    benchmark='gpu_suite', device=on['device'], device_name=on['device_name'], torch=on['torch'],
    batch=on['batch'], seconds=seconds, under_10_minutes=seconds < 600,
    P1_offline_over_supervised={s: on['students'][s]['ratios']['offline_over_supervised'] for s in students},
    P2_offline_over_online={s: on['students'][s]['ratios']['offline_over_online'] for s in students},
    amp_on_over_off_images_per_s={s: {m: round(ips(on, s, m) / ips(off, s, m), 4) for m in ('supervised', 'offline', 'online')}
                                  for s in students},
    P3_dump_over_forward_only=dump['ratio'],
    goals_met=dict(train_step_amp_on=on['all_goals_met'], dump=dump['goal_met']),
    raw=dict(train_step_amp_on=on, train_step_amp_off=off, dump_throughput=dump))
print(json.dumps(result))
EOF
