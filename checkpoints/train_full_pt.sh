#!/usr/bin/env bash
# Minimax on the full bundle schedule (train_bundled.sh's flags) at other p_t values, for the
# full-schedule p_t table of REPRODUCTION.md. The bundled minimax.pt is one of these p_t values;
# the others land in checkpoints/full_pt/. Run from the project root.
set -euo pipefail
mkdir -p checkpoints/full_pt checkpoints/logs/full_pt
for pt in ${PTS:-0.9 0.7 0.6}; do
  .venv/bin/python -m core.train --method minimax --p-t "$pt" --dataset fashion-mnist --arch resnet20 \
    --epochs 10 --batch-size 256 --lr 0.1 --seed 0 \
    --out "checkpoints/full_pt/minimax-full-pt$pt.pt" --progress "checkpoints/logs/full_pt/minimax-full-pt$pt.progress.jsonl" \
    > "checkpoints/logs/full_pt/minimax-full-pt$pt.log" 2>&1
done
