#!/usr/bin/env bash
# Rebuild wavecraft's bundled models from scratch: data -> codec -> token caches -> LMs -> export
# -> measurements. Every step is a plain `wavecraft` command; a training step that is interrupted
# resumes from its run folder's checkpoint when the script is run again.
#   bash recipes/bundled/build.sh            # everything (CPU: about 2.5 h on 2 cores)
#   STAGE=lm bash recipes/bundled/build.sh   # start at a stage: data | codec | tokens | lm | export | eval
set -euo pipefail
cd "$(dirname "$0")/../.."
W="${WAVECRAFT:-.venv/bin/wavecraft}"
STAGE="${STAGE:-data}"
stages=(data codec tokens lm export eval)
start=-1
for i in "${!stages[@]}"; do [ "${stages[$i]}" = "$STAGE" ] && start=$i; done
[ "$start" -ge 0 ] || { echo "unknown STAGE=$STAGE (one of ${stages[*]})" >&2; exit 2; }
at() { for i in "${!stages[@]}"; do [ "${stages[$i]}" = "$1" ] && [ "$i" -ge "$start" ] && return 0; done; return 1; }
OUT=wavecraft/models/bundled

if at data; then
  # bash recipes/install_data_sources.sh first (soundfonts, game sound packages, music21, ...).
  $W data build-music datasets/music --seed 0 --hours 5 --sample-rate 16000 --clip-seconds 10 \
     --generated-fraction 0.6 --force
  $W data build-sounds datasets/sounds --seed 0 --sample-rate 16000 --force
  $W data merge datasets/music/train datasets/sounds/train -o datasets/codec_train.jsonl --force
  $W data merge datasets/music/valid datasets/sounds/valid -o datasets/codec_valid.jsonl --force
fi
if at codec; then
  $W train codec --config recipes/bundled/codec16k.yaml
  $W export runs/bundled_codec runs/bundled/codec --force
fi
if at tokens; then
  $W data tokens datasets/music/train --codec runs/bundled/codec -o datasets/tokens/music_train --force
  $W data tokens datasets/sounds/train --codec runs/bundled/codec -o datasets/tokens/sounds_train --force
fi
if at lm; then
  # One thread each, side by side: on 2 cores that beats two threads one after the other.
  $W train lm --config recipes/bundled/music.yaml & music=$!
  $W train lm --config recipes/bundled/sound.yaml & sound=$!
  wait $music; wait $sound
fi
if at export; then
  $W export runs/bundled_music $OUT/music --half --force
  $W export runs/bundled_sound $OUT/sound --half --force
  python recipes/bundled/share_codec.py $OUT/sound $OUT/music  # one codec on disk for both
fi
if at eval; then
  mkdir -p runs/judges runs/adherence
  $W eval train-classifier datasets/music/train/data.jsonl --val datasets/music/valid/data.jsonl \
     --val datasets/music/eval/data.jsonl --label instrument_family --max-per-class 80 --epochs 20 \
     -o runs/judges/instrument_family --json runs/judges/instrument_family.json --force
  $W eval train-classifier datasets/sounds/train/data.jsonl --val datasets/sounds/valid/data.jsonl \
     --val datasets/sounds/eval/data.jsonl --label sound_class --max-per-class 40 --epochs 20 \
     -o runs/judges/sound_class --json runs/judges/sound_class.json --force
  $W eval codec codec datasets/music/eval/data.jsonl --json runs/adherence/codec_music.json
  $W eval codec codec datasets/sounds/eval/data.jsonl --json runs/adherence/codec_sounds.json
  $W eval adherence music datasets/music/eval/prompts.jsonl --classifier instrument_family=runs/judges/instrument_family \
     --duration 5 --seeds 10 --batch-size 31 --json runs/adherence/music.json --markdown runs/adherence/music.md --force
  $W eval adherence music datasets/music/eval/prompts.jsonl --classifier instrument_family=runs/judges/instrument_family \
     --duration 5 --seeds 10 --batch-size 31 --quantize int8 --json runs/adherence/music_int8.json \
     --markdown runs/adherence/music_int8.md --force
  "$(dirname "$W")/python" recipes/bundled/contrast.py --model music --classifier runs/judges/instrument_family \
     --seeds 6 --duration 5 --out runs/adherence/contrast > runs/adherence/contrast.md
  "$(dirname "$W")/python" recipes/bundled/contrast_distance.py runs/adherence/contrast
  "$(dirname "$W")/python" recipes/bundled/judge_ceiling.py datasets/music/eval --seconds 5
  "$(dirname "$W")/python" recipes/bundled/judge_ceiling.py datasets/music/eval --seconds 5 --codec codec
  $W eval melody music datasets/music/eval/data.jsonl --seconds 5 --json runs/adherence/melody.json
  $W eval adherence sound datasets/sounds/eval/prompts.jsonl --classifier sound_class=runs/judges/sound_class \
     --duration 4 --seeds 3 --batch-size 16 --json runs/adherence/sounds.json --markdown runs/adherence/sounds.md --force
fi
