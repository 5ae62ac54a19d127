#!/usr/bin/env bash
# Objective ablation for the SR denoiser: which objective is accurate at high noise on a CPU budget.
# Arms, each trained from scratch on the bundled autoencoder for the same steps, batch and lr:
#   eps      the paper's: noise prediction on the CompVis schedule (SNR 0.005 at t = T)
#   v        v-prediction on the same betas rescaled to zero terminal SNR
#   v-res    v-prediction, zero terminal SNR, diffusing the residual over the encoded condition
# Then, per arm: the one-step clean-latent error vs t (benchmarks/denoiser_accuracy.py) and `arbiscale
# eval sr` at 4x on the first 6 validation photos with the paper's sampling (pure noise, DDIM eta 1, no
# consistency step) and with a deterministic one (DDIM eta 0, 20 steps).
# Usage: [POOL=4096] benchmarks/objective_ablation.sh CORPUS512 OUT [STEPS]   (resumable: finished parts are skipped;
# POOL: crops encoded once per arm, --latent-cache)
set -euo pipefail
corpus=${1:?usage: $0 CORPUS512 OUT [STEPS]}
out=${2:?usage: $0 CORPUS512 OUT [STEPS]}
steps=${3:-1200}
here=$(cd "$(dirname "$0")" && pwd)
autoencoder="$here/../src/arbiscale/weights/sr/autoencoder"
declare -A arms=([eps]="--objective epsilon --no-residual" [v]="--objective v-zero-snr --no-residual" [v-res]="--objective v-zero-snr --residual")
for arm in eps v v-res; do
    [ -f "$out/$arm/model/model_index.json" ] && continue
    # shellcheck disable=SC2086
    arbiscale train ldm --task sr --autoencoder "$autoencoder" --data "$corpus" --split "$corpus/train.txt" \
        --val-split "$corpus/val.txt" --preset small --steps "$steps" --batch-size 16 --threads 2 \
        --checkpoint-every 400 --validate-every 400 --log-every 50 --latent-cache "${POOL:-4096}" --resume ${arms[$arm]} --out "$out/$arm"
done
python "$here/denoiser_accuracy.py" --data "$corpus" --split "$corpus/val.txt" "$out"/{eps,v,v-res}/model | tee "$out/accuracy.md"
for arm in eps v v-res; do
    common=(--model "$out/$arm/model" --data "$corpus" --split "$corpus/val.txt" --scales 4 --protocol liif-benchmark
            --baseline bicubic --max-images 6 --seed 0 --grid-images 2 --no-progress --overwrite)
    [ -f "$out/eval-paper-$arm/results.json" ] || arbiscale eval sr "${common[@]}" --sampler ddim --steps 50 --eta 1 \
        --strength 1 --no-lr-consistency --out "$out/eval-paper-$arm"
    [ -f "$out/eval-ddim20-$arm/results.json" ] || arbiscale eval sr "${common[@]}" --sampler ddim --steps 20 --eta 0 \
        --strength 1 --no-lr-consistency --out "$out/eval-ddim20-$arm"
done
