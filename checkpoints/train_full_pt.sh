#!/usr/bin/env bash
# Minimax on the full bundle schedule (train_bundled.sh's flags) at other p_t values, for the
# full-schedule p_t table of REPRODUCTION.md (p_t 0.7 is the bundled minimax.pt, from
# train_bundled.sh). These runs were made with --out in a scratch folder, then moved here; the
# p_t 0.9 run was the first bundled minimax.pt (its log still names that path). Run from the project root.
set -euo pipefail
mkdir -p checkpoints/full_pt checkpoints/logs/full_pt
for pt in ${PTS:-0.9 0.6}; do
  .venv/bin/python -m core.train --method minimax --p-t "$pt" --dataset fashion-mnist --arch resnet20 \
    --epochs 10 --batch-size 256 --lr 0.1 --seed 0 \
    --out "checkpoints/full_pt/minimax-full-pt$pt.pt" --progress "checkpoints/logs/full_pt/minimax-full-pt$pt.progress.jsonl" \
    > "checkpoints/logs/full_pt/minimax-full-pt$pt.log" 2>&1
done
