#!/usr/bin/env bash
# The recipe of the bundled default model (preset `small`; the upscaler's denoiser `small-wide`): every stage, resumable.
# Re-running the script continues each stage from its newest checkpoint (finished stages are skipped).
# Usage: scripts/train_default_model.sh CORPUS_DIR RUNS_DIR
#   CORPUS_DIR: built by scripts/build_corpus.py (train.txt / val.txt inside)
#   Step counts can be overridden: AE_STEPS, SR_STEPS, SR_MORE_STEPS, DEC_STEPS, ALIGN_STEPS, ALIGN_DEC_STEPS, GEN_STEPS, LIIF_STEPS; THREADS (default 2,
#   the cores of the machine that trained the bundled model). Precision is auto: bf16 autocast where the GPU or
#   CPU computes bf16 natively, fp32 elsewhere (MIXED_PRECISION=no|bf16 forces it). On several GPUs prefix
#   LAUNCH="accelerate launch --multi_gpu --num_processes N". The SR denoiser uses the CLI's default objective:
#   v-prediction on a zero-terminal-SNR schedule, diffusing the residual over the encoded condition.
set -euo pipefail
corpus=${1:?usage: $0 CORPUS_DIR RUNS_DIR}
runs=${2:?usage: $0 CORPUS_DIR RUNS_DIR}
launch=${LAUNCH:-arbiscale}
[ "$launch" = arbiscale ] || launch="$launch -m arbiscale.cli.main"
common=(--data "$corpus" --split "$corpus/train.txt" --val-split "$corpus/val.txt"
        --mixed-precision "${MIXED_PRECISION:-auto}" --threads "${THREADS:-2}" --checkpoint-every 500 --validate-every 1000 --log-every 50 --resume)

stage() {  # stage NAME ARGS...: run unless RUNS/NAME/model already exists
    local name=$1; shift
    if [ -f "$runs/$name/model/config.json" ] || [ -f "$runs/$name/model/model_index.json" ]; then
        echo "== $name: done, skipped"; return
    fi
    echo "== $name"; $launch train "$@" --out "$runs/$name" "${common[@]}"
}

stage autoencoder autoencoder --preset small --steps "${AE_STEPS:-12000}" --num-queries 1024
sr_denoiser=(ldm --task sr --preset small-wide --batch-size 16 --lr-schedule cosine --warmup-steps 200)
stage ldm-sr "${sr_denoiser[@]}" --autoencoder "$runs/autoencoder/model" --steps "${SR_STEPS:-20000}"
# A second cosine cycle at half the lr (session 11: the shipped denoiser had its first 20000 steps on the 56 photos of the
# corpus before endless-sky-data's 270 joined it, and these 18000 on all 326).
stage ldm-sr-more "${sr_denoiser[@]}" --init-from "$runs/ldm-sr/model" --steps "${SR_MORE_STEPS:-18000}" --lr 1e-4
# The upscaler's decoder: fine-tuned alone (encoder frozen, so the denoiser's latents stay valid) into the cheaper head.
stage decoder-sr decoder --preset small --autoencoder "$runs/autoencoder/model" --head-blend first-layer --steps "${DEC_STEPS:-4000}" --num-queries 1024
if [ ! -f "$runs/sr-first-layer/model_index.json" ]; then  # ldm-sr-more's pipeline with that decoder
    rm -rf "$runs/.sr-first-layer" && cp -r "$runs/ldm-sr-more/model" "$runs/.sr-first-layer"
    rm -rf "$runs/.sr-first-layer/autoencoder" && cp -r "$runs/decoder-sr/model" "$runs/.sr-first-layer/autoencoder"
    mv "$runs/.sr-first-layer" "$runs/sr-first-layer"
fi
stage align-sr align --preset small-wide --model "$runs/sr-first-layer" --steps "${ALIGN_STEPS:-2000}" --num-queries 1024
# The decoder fitted to the latents that denoiser samples (session 12), encoder and denoiser frozen: the shipped upscaler.
stage align-decoder-sr align-decoder --preset small --model "$runs/align-sr/model" --pool 16384 --max-lr-factor 12 --steps "${ALIGN_DEC_STEPS:-12000}" \
    --batch-size 8 --num-queries 1024 --lr 1e-4 --lr-schedule cosine --warmup-steps 200
stage ldm-gen ldm --task gen --preset small --autoencoder "$runs/autoencoder/model" --steps "${GEN_STEPS:-15000}" --batch-size 16
stage liif liif --preset small --steps "${LIIF_STEPS:-4500}" --batch-size 16   # the regression baseline of MODEL_CARD.md
# The training photos' attribution and their packages' copyright files travel with the weights
# (scripts/export_default_model.py copies NOTICE.md and licences/ into the bundled model).
for model in "$runs/align-decoder-sr/model" "$runs/ldm-gen/model"; do
    [ -d "$model" ] || continue  # (a dry run with LAUNCH=echo trains nothing)
    cp "$corpus/NOTICE.md" "$model/NOTICE.md" && rm -rf "$model/licences" && cp -r "$corpus/licences" "$model/licences"
done
