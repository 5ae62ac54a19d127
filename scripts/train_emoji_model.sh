#!/usr/bin/env bash
# The recipe of the bundled emoji generator (`arbiscale generate --model emoji`, the default): resumable.
# Usage: scripts/train_emoji_model.sh AUTOENCODER_DIR RUNS_DIR [VECTOR_SET_DIR]
#   AUTOENCODER_DIR: the photo autoencoder whose frozen encoder the generator keeps (the bundled upscaler's:
#     src/arbiscale/weights/sr/autoencoder, or RUNS/decoder-sr/model of scripts/train_default_model.sh)
#   VECTOR_SET_DIR: built here with scripts/build_vector_set.py when missing (default RUNS_DIR/noto-faces):
#     the 125 Noto Emoji faces (@iconify-json/noto, Apache-2.0), exact renders at 64 to 512 px.
#   Step counts: DEC_STEPS (default 8000), GEN_STEPS (default 8000); THREADS (default 1 per stage: the two stages
#   are independent, as the encoder is frozen, and can run side by side on 2 cores).
set -euo pipefail
autoencoder=${1:?usage: $0 AUTOENCODER_DIR RUNS_DIR [VECTOR_SET_DIR]}
runs=${2:?usage: $0 AUTOENCODER_DIR RUNS_DIR [VECTOR_SET_DIR]}
set_dir=${3:-$runs/noto-faces}
[ -f "$set_dir/manifest.json" ] || python "$(dirname "$0")/build_vector_set.py" --out "$set_dir" --match face --sizes 64,96,128,192,256,384,512
data=(--data "$set_dir/64" --split "$set_dir/64/train.txt" --val-split "$set_dir/64/val.txt" --augment flip --preset small
      --threads "${THREADS:-1}" --log-every 50 --resume)
# The decoder: the photo decoder fine-tuned (encoder frozen) on the exact renders at 1x to 8x the 64 px input.
[ -f "$runs/emoji-decoder/model/config.json" ] || arbiscale train decoder --autoencoder "$autoencoder" --renders "$set_dir" "${data[@]}" \
    --steps "${DEC_STEPS:-8000}" --num-queries 1024 --validate-every 500 --checkpoint-every 250 --out "$runs/emoji-decoder"
# The generator: unconditional v-prediction on zero-terminal-SNR, on the frozen encoder's latents of the 64 px renders.
[ -f "$runs/emoji-ldm/model/model_index.json" ] || arbiscale train ldm --task gen --autoencoder "$autoencoder" "${data[@]}" \
    --steps "${GEN_STEPS:-8000}" --batch-size 16 --ema 0.999 --latent-cache 2048 --validate-every 1000 --checkpoint-every 250 \
    --out "$runs/emoji-ldm"
# The pipeline: the generator with the fine-tuned decoder (same encoder, so its latents stay valid).
if [ ! -f "$runs/emoji/model_index.json" ]; then
    rm -rf "$runs/.emoji" && cp -r "$runs/emoji-ldm/model" "$runs/.emoji"
    rm -rf "$runs/.emoji/autoencoder" && cp -r "$runs/emoji-decoder/model" "$runs/.emoji/autoencoder"
    cp "$set_dir/NOTICE.md" "$runs/.emoji/NOTICE.md"  # the training data's attribution, shipped with the weights
    mv "$runs/.emoji" "$runs/emoji"
fi
echo "ship it with: python scripts/export_default_model.py emoji=$runs/emoji"
