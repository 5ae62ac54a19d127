"""The alignment loss: what makes the latent diffusion model and the implicit decoder agree.

The one-step estimate of the clean latent is decoded through the frozen decoder with gradients,
and its image error is added to the usual denoising error. Each sample keeps its own SNR weight:
the authors' code multiplied a (B, 1, 1, 1) loss by a (B,) weight, which broadcasts to (B, B, ...)
and collapses to mean(weight) * mean(loss); here every reduction is explicit and per sample.
"""

from __future__ import annotations

import torch

from ..choices import ALIGN_WEIGHTINGS


def clipped_snr(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, max_snr: float = 5.0) -> torch.Tensor:
    """(B,) SNR_t = a_t / (1 - a_t), clipped from above (min-SNR) because it reaches ~665 near t = 0."""
    alpha = alphas_cumprod.to(timesteps.device)[timesteps].float()
    return (alpha / (1 - alpha)).clamp(max=max_snr)


def sample_weights(weighting: str, alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, max_snr: float = 5.0) -> torch.Tensor:
    """(B,) weights of L_align by `weighting` (`choices.ALIGN_WEIGHTINGS`): the paper's clipped SNR, or uniform."""
    if weighting == "clipped-snr":
        return clipped_snr(alphas_cumprod, timesteps, max_snr)
    if weighting == "uniform":
        return torch.ones(timesteps.shape, device=timesteps.device)
    raise ValueError(f"unknown weighting {weighting!r}: use one of {', '.join(ALIGN_WEIGHTINGS)}")


def per_sample_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean over every axis but the first: (B, ...) -> (B,)."""
    return values.flatten(1).mean(dim=1)


def alignment_loss(
    noise_pred: torch.Tensor, noise: torch.Tensor, decoded: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, denoise_weight: float = 1.0, recon_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_align = mean_b w_b (l1 * MSE(eps_hat, eps)_b + l2 * L1(decoded, target)_b)."""
    if weights.shape != noise_pred.shape[:1]:
        raise ValueError(f"expected one weight per sample, shape {tuple(noise_pred.shape[:1])}, got {tuple(weights.shape)}")
    denoise = per_sample_mean((noise_pred.float() - noise.float()) ** 2)
    recon = per_sample_mean((decoded.float() - target.float()).abs())
    loss = (weights * (denoise_weight * denoise + recon_weight * recon)).mean()
    return loss, {"loss_dm": denoise.mean().item(), "loss_recon": recon.mean().item()}
