#!/usr/bin/env bash
# The recipe of the bundled default model (preset `small`): every stage, resumable.
# Re-running the script continues each stage from its newest checkpoint (finished stages are skipped).
# Usage: scripts/train_default_model.sh CORPUS_DIR RUNS_DIR
#   CORPUS_DIR: built by scripts/build_corpus.py (train.txt / val.txt inside)
#   Step counts can be overridden: AE_STEPS, SR_STEPS, ALIGN_STEPS, GEN_STEPS, LIIF_STEPS; THREADS (default 2,
#   the cores of the machine that trained the bundled model). Precision is auto: bf16 autocast where the GPU or
#   CPU computes bf16 natively, fp32 elsewhere (MIXED_PRECISION=no|bf16 forces it). On several GPUs prefix
#   LAUNCH="accelerate launch --multi_gpu --num_processes N". The SR denoiser uses the CLI's default objective:
#   v-prediction on a zero-terminal-SNR schedule, diffusing the residual over the encoded condition.
set -euo pipefail
corpus=${1:?usage: $0 CORPUS_DIR RUNS_DIR}
runs=${2:?usage: $0 CORPUS_DIR RUNS_DIR}
launch=${LAUNCH:-arbiscale}
[ "$launch" = arbiscale ] || launch="$launch -m arbiscale.cli.main"
common=(--data "$corpus" --split "$corpus/train.txt" --val-split "$corpus/val.txt" --preset small
        --mixed-precision "${MIXED_PRECISION:-auto}" --threads "${THREADS:-2}" --checkpoint-every 500 --validate-every 1000 --log-every 50 --resume)

stage() {  # stage NAME ARGS...: run unless RUNS/NAME/model already exists
    local name=$1; shift
    if [ -f "$runs/$name/model/config.json" ] || [ -f "$runs/$name/model/model_index.json" ]; then
        echo "== $name: done, skipped"; return
    fi
    echo "== $name"; $launch train "$@" --out "$runs/$name" "${common[@]}"
}

stage autoencoder autoencoder --steps "${AE_STEPS:-12000}" --num-queries 1024
stage ldm-sr ldm --task sr --autoencoder "$runs/autoencoder/model" --steps "${SR_STEPS:-15000}" --batch-size 16
stage align-sr align --model "$runs/ldm-sr/model" --steps "${ALIGN_STEPS:-2000}" --num-queries 1024
stage ldm-gen ldm --task gen --autoencoder "$runs/autoencoder/model" --steps "${GEN_STEPS:-15000}" --batch-size 16
stage liif liif --steps "${LIIF_STEPS:-4500}" --batch-size 16   # the regression baseline of MODEL_CARD.md
