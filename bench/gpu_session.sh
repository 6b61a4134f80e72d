#!/usr/bin/env bash
# One lease of a GPU machine (see DEVELOPERS notes in bench/RESULTS.md): Fashion-MNIST from the
# carried .gz files (.gpu/fashion-mnist, ignored by git), then the steps named in $STEPS:
#   bundle     the bundle (checkpoints/train_bundled.sh, 20 epochs, all six at once) and the
#              40-epoch trio beside it (is 20 epochs where the metrics stop moving?)
#   solo       one 20-epoch CE run alone, wall clock including start-up
#   gputests   tests/test_gpu.py (graphed steps give the eager weights)
#   throughput bench/train_throughput.py --device cuda (ours vs the naive loop, side by side;
#              graphs and eager for three objectives, then --compile)
# Everything comes back as $OUT/*.tar / *.txt.
set -u
export PYTHONUNBUFFERED=1 PYTHON=python3
OUT=${OUT:-/tmp/gpu-out}
STEPS=${STEPS:-gputests solo throughput bundle}
mkdir -p "$OUT" data/FashionMNIST/raw
for f in .gpu/fashion-mnist/*.gz; do gunzip -c "$f" > "data/FashionMNIST/raw/$(basename "$f" .gz)"; done
python3 -c "import torch, torchvision; print(torch.__version__, torchvision.__version__, torch.cuda.get_device_name(0))" | tee "$OUT/machine.txt"
nproc >> "$OUT/machine.txt"
begin=$(date +%s)
for step in $STEPS; do
  t0=$(date +%s)
  case $step in
    bundle)
      rm -rf checkpoints/.partial  # a fresh bundle: nothing from the CPU runs is resumed
      DEVICE=cuda JOBS=6 bash checkpoints/train_bundled.sh &
      EPOCHS=40 ONLY="ce minimax lsg" DEST=/tmp/e40 DEVICE=cuda JOBS=3 bash checkpoints/train_bundled.sh &
      sleep 60; nvidia-smi >> "$OUT/machine.txt"
      wait
      tar cf "$OUT/bundle.tar" checkpoints/*.pt checkpoints/logs
      tar cf "$OUT/e40.tar" -C /tmp e40 ;;
    solo)
      s=$(date +%s.%N); python3 -m core.train --method ce --epochs 20 --device cuda --out /tmp/solo/ce.pt \
        --log-interval 10 > "$OUT/solo.txt" 2>&1; echo "wall clock: $(echo "$(date +%s.%N) - $s" | python3 -c "print(round(eval(input()),1))") s" >> "$OUT/solo.txt" ;;
    gputests)
      python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py > "$OUT/gputests.txt" 2>&1
      tail -n 5 "$OUT/gputests.txt" ;;
    throughput)
      python3 bench/train_throughput.py --device cuda --methods ce,minimax,lsg --variants graphs,eager --rounds 2 \
        > "$OUT/throughput.txt" 2>&1
      python3 bench/train_throughput.py --device cuda --methods ce --variants compile --rounds 1 >> "$OUT/throughput.txt" 2>&1
      cp bench/RESULTS.md "$OUT/RESULTS.md"
      grep "^|" "$OUT/throughput.txt" ;;
  esac
  echo "step $step: $(( $(date +%s) - t0 )) s (total $(( $(date +%s) - begin )) s)" | tee -a "$OUT/machine.txt"
done
grep -h '"done"' checkpoints/logs/*.progress.jsonl /tmp/e40/logs/*.progress.jsonl 2>/dev/null | cut -c1-200
tail -n 3 "$OUT/solo.txt" 2>/dev/null
