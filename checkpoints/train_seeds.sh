#!/usr/bin/env bash
# Runs over seeds, for the "Over seeds" section of REPRODUCTION.md: the minimax paper's Table 1
# (cross-entropy, confidence penalty, label smoothing and minimax, mean +- std over runs), the LSG
# paper's Table 1 (LSG over seeds; its count over 20 models is train_lsg20.sh's), and its
# Sec. 4.3 fixed gate (a hand-set gate, each class owning 6 units, 4 open to all: Fig. 7 and Table 2) and
# its Sec. 3.3 tightening (the trained gate made binary after 2 epochs, then held), and minimax
# drawing the least likely class at random among tied minima (its paper's Sec. 3.2.2).
# Each with the bundle's options, three seeds, on the sweeps' short schedule (4 epochs on a seeded,
# class-balanced 10,000 of the training images; figures on the whole test split), one run at a
# time on this project's 2-core CPU (about 75 s a run when nothing else runs). The checkpoints go
# to checkpoints/studies/seeds/ (not tracked: REPRODUCTION.md, "Studies of many models"); make_report.py records
# each model's figures, with its checkpoint's SHA-256 and its command, in checkpoints/studies/seeds.json.
# Run from the project root.
#   SEEDS="0 1"   fewer seeds
#   ONLY="lsg-fixed"   some kinds (names as below); the study's file keeps the others' figures
set -euo pipefail
COMMON=(--dataset fashion-mnist --arch resnet20 --epochs 4 --limit 10000 --batch-size 256 --lr 0.1 --log-interval 10)
mkdir -p checkpoints/studies/seeds
failed=()
for seed in ${SEEDS:-0 1 2}; do
  for spec in "ce:" "confidence_penalty:--beta 0.1" "label_smoothing:--eps 0.1" "minimax:--p-t 0.7" \
              "minimax-ties:--p-t 0.7 --random-ties true" "lsg:" \
              "lsg-fixed:--fixed-gate true" "lsg-tight:--tighten-epoch 2"; do
    name=${spec%%:*}
    if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then continue; fi
    out="checkpoints/studies/seeds/$name-seed$seed.pt"
    # --resume: a finished run returns at once, one cut off goes on, a missing one starts
    # shellcheck disable=SC2086
    .venv/bin/python -m core.train --method "${name%%-*}" ${spec#*:} "${COMMON[@]}" --seed "$seed" --out "$out" \
      --resume >> "checkpoints/studies/seeds/$name-seed$seed.log" 2>&1 || failed+=("$name-seed$seed")
  done
done
if (( ${#failed[@]} )); then echo "failed: ${failed[*]} (see their .log in checkpoints/studies/seeds/)" >&2; exit 1; fi
