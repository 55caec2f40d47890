#!/usr/bin/env bash
# Reproduce the shipped demo checkpoints (CPU, one process and one thread each). Datasets first:
#   python -m gta_core synth data/temporal_low_s0 --seed 0 --variant temporal --videos-per-class 150 --clutter low --workers 2
#   python -m gta_core synth data/appearance_low_s1 --seed 1 --variant appearance --videos-per-class 150 --clutter low --workers 2
# then `bash checkpoints/train_demos.sh [NAME ...]` (default: all six, in this order). The shipped
# ones ran as two such scripts side by side on the 2-core CPU:
#   bash checkpoints/train_demos.sh temporal_r2d18_gta temporal_r2d18_tape temporal_r2d18 appearance_r2d18_gta
#   bash checkpoints/train_demos.sh temporal_r2d18_nl temporal_r2d18_dnl
# The two GTAs were retrained for issue 15 (M̂'s own parameter group: --matrix-lr-mult 10
# --matrix-weight-decay 0.05, the trainer's defaults since then) from different seeds (SEED below),
# side by side with the second-seed GTAs used for the within/across-dataset comparison of M̂:
#   SEED=3 OUT=/work/data/seeds bash checkpoints/train_demos.sh temporal_r2d18_gta
#   SEED=4 OUT=/work/data/seeds bash checkpoints/train_demos.sh appearance_r2d18_gta
# DATA (default data) is the folder holding the datasets, OUT (default checkpoints) the one for the
# checkpoints, SEED overrides the per-checkpoint seed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data}
OUT=${OUT:-checkpoints}
COMMON=(--cache-frames --input-size 112 --resize-shorter 128 --threads 1 --batch-size 8
        --optimizer adamw --lr 2e-3 --weight-decay 0.05 --schedule cosine --warmup-epochs 0.5 --epochs "${EPOCHS:-15}" --no-progress
        --matrix-lr-mult 10 --matrix-weight-decay 0.05)
declare -A MODEL=(
  [temporal_r2d18_gta]=demo_r2d18_gta [temporal_r2d18]=demo_r2d18 [temporal_r2d18_dnl]=demo_r2d18_dnl
  [temporal_r2d18_tape]=demo_r2d18_tape [appearance_r2d18_gta]=demo_r2d18_gta [temporal_r2d18_nl]=demo_r2d18_nl
)
# Checkpoints that are compared with each other (the two GTAs) start from different seeds.
declare -A SEEDS=(
  [temporal_r2d18_gta]=1 [appearance_r2d18_gta]=2 [temporal_r2d18]=0 [temporal_r2d18_dnl]=0
  [temporal_r2d18_tape]=0 [temporal_r2d18_nl]=0
)
NAMES=("$@")
[ ${#NAMES[@]} -eq 0 ] && NAMES=(temporal_r2d18_gta temporal_r2d18_tape temporal_r2d18 appearance_r2d18_gta temporal_r2d18_nl temporal_r2d18_dnl)
for name in "${NAMES[@]}"; do
  if [[ $name == appearance_* ]]; then
    data=(--data "$DATA/appearance_low_s1")
  else  # clips of a time-reversal pair, played backwards, with the pair's label (see gta_core/train/build.py)
    data=(--data "$DATA/temporal_low_s0" --reverse-aug 0.5)
  fi
  rm -rf "${OUT:?}/$name"
  $PY -m gta_core train --model "${MODEL[$name]}" "${data[@]}" --out "$OUT/$name" "${COMMON[@]}" \
    --seed "${SEED:-${SEEDS[$name]}}"
done
