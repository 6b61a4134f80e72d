#!/usr/bin/env bash
# The exact commands that trained the bundled checkpoints; logs land beside them.
# One schedule for every method: same seed, epochs, batch size and learning rate, with a
# per-epoch snapshot (core/trajectory.py) kept in each checkpoint. Run from the project root.
# The bundle was made on one NVIDIA H100 (bench/gpu_session.sh, step "schedule"):
#   EPOCHS=40 DEST=/tmp/b40 DEVICE=cuda JOBS=6 PYTHON=python3 bash checkpoints/train_bundled.sh
# and /tmp/b40's checkpoints and logs copied here; the whole bundle took 7.5 minutes. On the CPU
# (2 cores) a 20-epoch run took about 35 minutes, so a 40-epoch one should take about 70.
#   ONLY="lsg confidence_penalty"   retrains a subset (names as below)
#   EPOCHS=20                       another schedule (the bundle is 40)
#   DEVICE=cuda                     the device (auto: a GPU when there is one)
#   JOBS=6                          runs at once (on a GPU; on the CPU keep 1)
#   DEST=/tmp/e40                   another folder for the checkpoints and logs
#   PYTHON=python3                  the interpreter (default: the project's .venv)
#   ARCH=vit_tiny PREFIX=vit_       another architecture, its checkpoints named vit_<method>.pt
#   LR=0.003 OPTS="--optimizer adamw --weight-decay 0.05"   another optimiser and learning rate
# The bundled ViT trio (issue 30) was made on this project's 2-core CPU, two runs at a time:
#   OMP_NUM_THREADS=1 JOBS=2 ARCH=vit_tiny PREFIX=vit_ EPOCHS=12 LR=0.003 OPTS="--optimizer adamw --weight-decay 0.05" \
#     ONLY="ce minimax lsg" bash checkpoints/train_bundled.sh
# A run cut off part-way (a session ends) can be kept, with its log, in checkpoints/.partial/
# (a hidden folder the app does not list) with its optimiser state; this script then continues
# it with --resume, which gives the same weights as an uninterrupted run (tests/test_train.py).
set -euo pipefail
EPOCHS=${EPOCHS:-40}
DEVICE=${DEVICE:-auto}
JOBS=${JOBS:-1}
DEST=${DEST:-checkpoints}
PYTHON=${PYTHON:-.venv/bin/python}
ARCH=${ARCH:-resnet20}
PREFIX=${PREFIX:-}
LR=${LR:-0.1}
OPTS=${OPTS:-}
mkdir -p "$DEST/logs"
for spec in "lsg" "confidence_penalty --beta 0.1" "ce" "minimax --p-t 0.7" "maxnte --lam 1.0" "label_smoothing --eps 0.1"; do
  method=${spec%% *}
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $method "* ]]; then continue; fi
  name=$PREFIX$method
  resume=()
  if [[ -f "checkpoints/.partial/$name.pt" ]]; then  # started in an earlier session
    mv "checkpoints/.partial/$name.pt" "$DEST/$name.pt"
    mv "checkpoints/.partial/$name.progress.jsonl" "$DEST/logs/$name.progress.jsonl"
    mv "checkpoints/.partial/$name.log" "$DEST/logs/$name.log"
    resume=(--resume)
  else
    rm -f "$DEST/logs/$name.progress.jsonl" "$DEST/logs/$name.log"
  fi
  while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
  # shellcheck disable=SC2086
  "$PYTHON" -m core.train --method $spec --dataset fashion-mnist --arch "$ARCH" $OPTS \
    --epochs "$EPOCHS" --batch-size 256 --lr "$LR" --seed 0 --device "$DEVICE" --log-interval 10 \
    --out "$DEST/$name.pt" --progress "$DEST/logs/$name.progress.jsonl" "${resume[@]}" \
    >> "$DEST/logs/$name.log" 2>&1 &
done
wait
