#!/usr/bin/env bash
# Twenty LSG models, for the LSG paper's "statistic analysis on 20 different LSG models" (Sec. 4.3:
# how many of the last layer's filters each class monopolises, and how many all classes share),
# in REPRODUCTION.md's "Twenty LSG models". The bundle's LSG options and target density 0.2, seeds
# 0-19, on a seeded, class-balanced 10,000 of the training images, figures on the whole test split.
# One change from the bundle's schedule, so the gate can settle on a CPU: a gated step at every step
# after the warm-up epoch (--period 1; the bundle gates one step in three). A gate reaches the
# target density after about 240 gated steps (the bundle's log: 0.82, 0.34, 0.198 after its epochs
# 2-4 at about 78 gated steps an epoch); the seeds study's 4 short epochs give it 40 and leave it
# at 0.93, where no unit is any class's alone. Here 8 epochs give 280.
# One run at a time on this project's 2-core CPU (about 2.5 min a run when nothing else runs); on
# a GPU, DEVICE=cuda JOBS=10 (bench/gpu_session.sh's lsg20 step). The checkpoints go to checkpoints/studies/lsg20/ (not tracked);
# make_report.py records each model's figures, with its checkpoint's SHA-256 and its command, in
# checkpoints/studies/lsg20.json. A rerun trains only what is missing. Run from the project root.
#   SEEDS="0 1"   fewer seeds
set -euo pipefail
DEVICE=${DEVICE:-cpu}
JOBS=${JOBS:-1}
PYTHON=${PYTHON:-.venv/bin/python}
COMMON=(--method lsg --gate-lr 0.4 --dataset fashion-mnist --arch resnet20 --epochs 8 --limit 10000
        --batch-size 256 --lr 0.1 --log-interval 10 --device "$DEVICE")
mkdir -p checkpoints/studies/lsg20
for seed in ${SEEDS:-$(seq 0 19)}; do
  out="checkpoints/studies/lsg20/lsg-seed$seed.pt"
  if [[ -f "$out" ]]; then continue; fi
  while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
  "$PYTHON" -m core.train "${COMMON[@]}" --seed "$seed" --out "$out" \
    > "checkpoints/studies/lsg20/lsg-seed$seed.log" 2>&1 &
done
wait
