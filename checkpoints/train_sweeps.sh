#!/usr/bin/env bash
# The minimax paper's Fig. 5 as two sweeps (core.sweep), for the "Sweeps" section of
# REPRODUCTION.md: minimax over p_t and MaxNTE over lambda, two seeds each, on a short schedule
# (4 epochs on a seeded, class-balanced 10,000 of the training images; the whole test split)
# so that both fit in about 15 minutes on this project's 2-core CPU, one run at a time. The
# Specificity and cost page draws each as figure against value, mean +- std over the seeds.
# Run from the project root.
set -euo pipefail
COMMON=(--dataset fashion-mnist --arch resnet20 --epochs 4 --limit 10000 --batch-size 256 --lr 0.1 --log-interval 10)
.venv/bin/python -m core.sweep --vary p_t=0.5,0.7,0.9 --seeds 0,1 --out-dir checkpoints/studies/sweeps -- --method minimax "${COMMON[@]}"
.venv/bin/python -m core.sweep --vary lam=0.5,1,2 --seeds 0,1 --out-dir checkpoints/studies/sweeps -- --method maxnte "${COMMON[@]}"
