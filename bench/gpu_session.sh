#!/usr/bin/env bash
# One lease of a GPU machine, everything for it in one command. Fashion-MNIST travels as its four
# raw files compressed with xz (`xz -9e`: 26.4 MB, against 30.9 MB as .gz) in .gpu/fashion-mnist/
# (listed in .git/info/exclude, named in the call's carry). What travels is capped at 64 MiB
# (67.1 MB) with the tracked files: 40.5 MB on 2026-12-06 (`git ls-files -z | xargs -0 du -cb`), so
# 66.9 MB in all; a bigger bundle needs the data sent over two calls. Made once, here (3 minutes):
#   mkdir -p .gpu/fashion-mnist && echo /.gpu/ >> .git/info/exclude
#   for f in data/FashionMNIST/raw/*-ubyte; do xz -9e -T1 -c "$f" > ".gpu/fashion-mnist/$(basename "$f").xz"; done
# Then the steps named in
# $STEPS run in order, each writing under $OUT:
#   gputests   tests/test_gpu.py (graphed steps give the eager weights)
#   solo       one 20-epoch CE run alone, wall clock including start-up, and where it went
#              (bench/run_timeline.py)
#   startup    bench/startup.py --device cuda (torch.optim against core.sgd before the first step)
#   throughput bench/train_throughput.py --device cuda (ours vs the naive loop, side by side:
#              graphs for ce, lsg and minimax, then --compile)
#   trio       CE, minimax and LSG, 10 epochs each: one after another, then all at once
#   analysis   bench/analysis_speed.py --device cuda --store memory (the image has no DuckDB)
#   imagenet   bench/imagenet_scale.py: 1000 classes x 60 JPEGs (12,000 held out), ResNet-50 at 224 px,
#              streamed; then its forward passes under torchrun on one GPU and on every GPU there is
#   schedule   the bundle (checkpoints/train_bundled.sh, 40 epochs, all six at once) and the trio
#              on 80 epochs beside it; stopped (resumable) after $DEADLINE seconds
#   lsg20      the twenty LSG models of REPRODUCTION.md (checkpoints/train_lsg20.sh, ten at once),
#              their checkpoints and logs back as lsg20-0/7/14.tar (then `make_report.py` here records them)
# The bundled checkpoints came from the "schedule" step (bench/RESULTS.md lists every lease).
set -u
export PYTHONUNBUFFERED=1 PYTHON=python3
OUT=${OUT:-/tmp/gpu-out}
STEPS=${STEPS:-gputests analysis solo throughput schedule}
mkdir -p "$OUT" data/FashionMNIST/raw
python3 -c "import lzma, pathlib, shutil
for f in pathlib.Path('.gpu/fashion-mnist').glob('*.xz'):
    with lzma.open(f) as src, open('data/FashionMNIST/raw/' + f.stem, 'wb') as dst:
        shutil.copyfileobj(src, dst)"
python3 -c "import torch, torchvision; print(torch.__version__, torchvision.__version__, torch.cuda.get_device_name(0))" | tee "$OUT/machine.txt"
nproc >> "$OUT/machine.txt"
begin=$(date +%s)
for step in $STEPS; do
  t0=$(date +%s)
  case $step in
    schedule)
      EPOCHS=40 DEST=/tmp/b40 DEVICE=cuda JOBS=6 setsid bash checkpoints/train_bundled.sh &
      EPOCHS=80 ONLY="ce minimax lsg" DEST=/tmp/e80 DEVICE=cuda JOBS=3 setsid bash checkpoints/train_bundled.sh &
      sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv >> "$OUT/machine.txt"
      for _ in $(seq $(( (${DEADLINE:-500} - 90) / 5 ))); do pgrep -f core.train > /dev/null || break; sleep 5; done
      pkill -TERM -f core.train; sleep 5
      tar cf "$OUT/b40a.tar" -C /tmp b40/ce.pt b40/minimax.pt b40/lsg.pt b40/logs
      tar cf "$OUT/b40b.tar" -C /tmp b40/maxnte.pt b40/label_smoothing.pt b40/confidence_penalty.pt
      tar cf "$OUT/e80a.tar" -C /tmp e80/ce.pt e80/minimax.pt
      tar cf "$OUT/e80b.tar" -C /tmp e80/lsg.pt e80/logs
      grep -h '"epoch"' /tmp/b40/logs/*.progress.jsonl /tmp/e80/logs/*.progress.jsonl | tail -n 2 | cut -c1-160 ;;
    lsg20)
      DEVICE=cuda JOBS=10 bash checkpoints/train_lsg20.sh
      # about 1.7 MB a checkpoint: three tars stay under what one file may bring back (16 MiB)
      for part in "0 1 2 3 4 5 6" "7 8 9 10 11 12 13" "14 15 16 17 18 19"; do
        tar cf "$OUT/lsg20-${part%% *}.tar" $(for s in $part; do echo checkpoints/studies/lsg20/lsg-seed$s.*; done)
      done ;;
    imagenet)
      python3 bench/imagenet_scale.py --per-class 60 --keep /tmp/inet > "$OUT/imagenet.txt" 2>&1
      gpus=$(python3 -c "import torch; print(torch.cuda.device_count())")
      for n in 1 $gpus; do
        torchrun --standalone --nproc_per_node "$n" bench/sharded_forward.py /tmp/inet/resnet50.pt >> "$OUT/imagenet.txt" 2>&1
      done ;;
    solo)
      s=$(date +%s.%N); python3 -m core.train --method ce --epochs 20 --device cuda --out /tmp/solo/ce.pt \
        --log-interval 10 >> "$OUT/machine.txt" 2>&1; e=$(date +%s.%N)
      echo "solo 20-epoch wall clock: $(echo "$e - $s" | python3 -c "print(round(eval(input()),1))") s" >> "$OUT/machine.txt"
      python3 bench/run_timeline.py /tmp/solo/ce.progress.jsonl --began "$s" --ended "$e" | tee -a "$OUT/machine.txt" ;;
    trio)
      # comparing objectives: CE, minimax and LSG (10 epochs each) one after another, then all at
      # once as the sidebar launches them on a GPU (separate processes)
      s=$(date +%s.%N)
      for m in ce minimax lsg; do
        python3 -m core.train --method $m --epochs 10 --device cuda --out /tmp/seq/$m.pt --log-interval 10 > /dev/null 2>&1
      done
      e=$(date +%s.%N); echo "trio one after another: $(python3 -c "print(round($e - $s, 1))") s" | tee -a "$OUT/machine.txt"
      s=$(date +%s.%N)
      for m in ce minimax lsg; do
        python3 -m core.train --method $m --epochs 10 --device cuda --out /tmp/par/$m.pt --log-interval 10 > /dev/null 2>&1 &
      done
      wait
      e=$(date +%s.%N); echo "trio at once: $(python3 -c "print(round($e - $s, 1))") s" | tee -a "$OUT/machine.txt"
      grep -h '"done"' /tmp/seq/*.progress.jsonl /tmp/par/*.progress.jsonl | cut -c1-120 >> "$OUT/machine.txt" ;;
    startup)
      python3 bench/startup.py --device cuda --rounds 3 > "$OUT/startup.txt" 2>&1
      cp bench/RESULTS.md "$OUT/RESULTS.md"
      grep "^|" "$OUT/startup.txt" ;;
    gputests)
      python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py > "$OUT/gputests.txt" 2>&1
      tail -n 5 "$OUT/gputests.txt" ;;
    analysis)
      python3 bench/analysis_speed.py --device cuda --store memory > "$OUT/analysis.txt" 2>&1
      cp bench/RESULTS.md "$OUT/RESULTS.md"
      grep "^|" "$OUT/analysis.txt" ;;
    throughput)
      python3 bench/train_throughput.py --device cuda --methods ce,lsg,minimax --variants graphs --rounds 1 \
        > "$OUT/throughput.txt" 2>&1
      python3 bench/train_throughput.py --device cuda --methods ce --variants compile --rounds 1 --epochs 3 >> "$OUT/throughput.txt" 2>&1
      cp bench/RESULTS.md "$OUT/RESULTS.md"
      grep "^|" "$OUT/throughput.txt" ;;
  esac
  echo "step $step: $(( $(date +%s) - t0 )) s (total $(( $(date +%s) - begin )) s)" | tee -a "$OUT/machine.txt"
done
grep -h '"done"' /tmp/{b40,e80}/logs/*.progress.jsonl 2>/dev/null | cut -c1-200
grep "wall clock" "$OUT/machine.txt"
