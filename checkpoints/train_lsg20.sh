#!/usr/bin/env bash
# Twenty LSG models, for the LSG paper's "statistic analysis on 20 different LSG models" (Sec. 4.3:
# how many of the last layer's filters each class monopolises, and how many are shared by classes),
# in REPRODUCTION.md's "Twenty LSG models". The bundle's LSG options (one gated step in three,
# target density 0.2), seeds 0-19, 8 epochs on a seeded, class-balanced 10,000 of the training
# images; figures on the whole test split.
# One change from the bundle's options, so that the gate settles in a CPU's time: the gate's own
# learning rate is 0.4, not 0.1 (--gate-lr; the paper gives none for ResNet-20). At 0.1 a gate thins
# to its target after about 235 gated steps (the bundle's log: density 0.82, 0.34, 0.198 after its
# epochs 2-4); the seeds study's 4 short epochs give it 39, which leave it at 0.93, where no unit is
# any one class's. At 0.4, seed 0 went 0.87, 0.59, 0.235 after epochs 2-4 (13 gated steps an epoch).
# One run at a time on this project's 2-core CPU (about 3.3 min a run when nothing else runs); on
# a GPU, DEVICE=cuda JOBS=10 (bench/gpu_session.sh's lsg20 step). The checkpoints go to
# checkpoints/studies/lsg20/ (not tracked); make_report.py records each model's figures, with its
# checkpoint's SHA-256 and its command, in checkpoints/studies/lsg20.json. A rerun trains what is
# missing and finishes what was cut off (--resume). Run from the project root.
#   SEEDS="0 1"   fewer seeds
set -euo pipefail
DEVICE=${DEVICE:-cpu}
JOBS=${JOBS:-1}
PYTHON=${PYTHON:-.venv/bin/python}
COMMON=(--method lsg --gate-lr 0.4 --dataset fashion-mnist --arch resnet20 --epochs 8 --limit 10000
        --batch-size 256 --lr 0.1 --log-interval 10 --device "$DEVICE")
mkdir -p checkpoints/studies/lsg20
failed=0
for seed in ${SEEDS:-$(seq 0 19)}; do
  while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || failed=$((failed + 1)); done
  # --resume: a finished run returns at once, one cut off goes on, a missing one starts
  "$PYTHON" -m core.train "${COMMON[@]}" --seed "$seed" --out "checkpoints/studies/lsg20/lsg-seed$seed.pt" --resume \
    >> "checkpoints/studies/lsg20/lsg-seed$seed.log" 2>&1 &
done
while (( $(jobs -rp | wc -l) > 0 )); do wait -n || failed=$((failed + 1)); done
if (( failed )); then echo "$failed run(s) failed: see their .log in checkpoints/studies/lsg20/" >&2; exit 1; fi
