#!/usr/bin/env bash
# The exact commands that trained the bundled checkpoints; logs land beside them.
# One schedule for every method: same seed, epochs, batch size and learning rate, with a
# per-epoch snapshot (core/trajectory.py) kept in each checkpoint. Run from the project root.
#   ONLY="lsg confidence_penalty"   retrains a subset (names as below)
#   EPOCHS=30                       another schedule (the bundle is 20)
#   DEVICE=cuda                     on a GPU (the bundle was trained on the CPU)
# A run cut off part-way (a session ends) is kept, with its log, in checkpoints/.partial/ (a
# hidden folder the app does not list) with its optimiser state; this script then continues it
# with --resume, which gives the same weights as an uninterrupted run (tests/test_train.py).
# A finished run waits there too until the whole bundle shares the new schedule.
set -euo pipefail
EPOCHS=${EPOCHS:-20}
DEVICE=${DEVICE:-auto}
mkdir -p checkpoints/logs
for spec in "lsg" "confidence_penalty --beta 0.1" "ce" "minimax --p-t 0.7" "maxnte --lam 1.0" "label_smoothing --eps 0.1"; do
  name=${spec%% *}
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then continue; fi
  resume=()
  if [[ -f "checkpoints/.partial/$name.pt" ]]; then  # started in an earlier session (finished or not)
    mv "checkpoints/.partial/$name.pt" "checkpoints/$name.pt"
    mv "checkpoints/.partial/$name.progress.jsonl" "checkpoints/logs/$name.progress.jsonl"
    mv "checkpoints/.partial/$name.log" "checkpoints/logs/$name.log"
    resume=(--resume)
  else
    rm -f "checkpoints/logs/$name.progress.jsonl" "checkpoints/logs/$name.log"
  fi
  # shellcheck disable=SC2086
  .venv/bin/python -m core.train --method $spec --dataset fashion-mnist --arch resnet20 \
    --epochs "$EPOCHS" --batch-size 256 --lr 0.1 --seed 0 --device "$DEVICE" --log-interval 10 \
    --out "checkpoints/$name.pt" --progress "checkpoints/logs/$name.progress.jsonl" "${resume[@]}" \
    >> "checkpoints/logs/$name.log" 2>&1
done
