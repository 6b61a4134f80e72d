#!/usr/bin/env bash
# The Representative Substitution paper's two networks, for the "Representative Substitution"
# section of REPRODUCTION.md: its shallow CNN (four 3x3 convolutions of 64/64/128/128 filters, a
# hidden fully connected layer of 256 neurons) and its MLP (hidden layers of 128/512/2048/2048),
# trained with cross-entropy as the paper (on CIFAR-10; here Fashion-MNIST), one seed each, on the
# sweeps' short schedule (4 epochs on a seeded, class-balanced 10,000 of the training images) at
# a peak learning rate of 0.02 (neither has batch norm: 0.1 reached 33% where 0.02 reached 73%,
# README). The checkpoints go to checkpoints/studies/rs/ (not tracked: the MLP alone is 22 MB);
# make_report.py records their figures in checkpoints/studies/rs.json. Run from the project root.
set -euo pipefail
mkdir -p checkpoints/studies/rs
for arch in shallow_cnn mlp; do
  out="checkpoints/studies/rs/$arch.pt"
  if [[ -f "$out" ]]; then continue; fi
  .venv/bin/python -m core.train --method ce --arch "$arch" --dataset fashion-mnist --epochs 4 --limit 10000 \
    --batch-size 256 --lr 0.02 --seed 0 --log-interval 10 --snapshot-per-class 0 --out "$out" \
    > "checkpoints/studies/rs/$arch.log" 2>&1
done
