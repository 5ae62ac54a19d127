"""The library's named choices and the upscaler's sampling defaults, in a module that imports nothing.

The command line builds its parsers from these, so `arbiscale --help` and `arbiscale CMD --help`
answer without loading torch; the modules that implement each choice import their list from here.
"""

from __future__ import annotations

# `sampling.schedulers`: samplers by name, and the training objectives (noise-schedule variants).
SAMPLER_NAMES = ("ddpm", "ddim", "dpm-solver++", "unipc")
OBJECTIVE_NAMES = ("epsilon", "v-zero-snr")

# `pipelines.upscale`: the defaults of `UpscalePipeline.__call__`, `arbiscale upscale` and `eval sr`, chosen
# on the bundled model's validation photos (MODEL_CARD.md, "How the defaults were chosen"); eta applies to ddim only.
DEFAULT_SAMPLING = dict(sampler="ddim", num_inference_steps=5, strength=1.0, lr_consistency=True)
DEFAULT_DDIM_ETA = 1.0
# The paper's sampling: DDIM, 200 steps, eta 1, from pure noise, no consistency step.
# `pipe(image, scale=4, **PAPER_SAMPLING)` runs it.
PAPER_SAMPLING = dict(sampler="ddim", num_inference_steps=200, eta=1.0, strength=1.0, lr_consistency=False)

# `data.crops`: the symmetries training crops are augmented with. Photos look right under all 8 of a square;
# emoji, faces and text do not when turned or flipped upside down, so they take the left-right flip alone.
AUGMENTATIONS = ("dihedral", "flip", "none")

# `training.loop`: learning-rate schedules (diffusers' names): constant, or a decay to zero at the last step.
LR_SCHEDULES = ("constant", "cosine", "linear")

# `pipelines.generate`: DDIM's default eta for generation. Deterministic DDIM (eta 0) gave the bundled emoji
# generator clean faces at 50 steps where eta 1 left blotches (MODEL_CARD.md, "Generation: how the defaults
# were chosen"); the upscaler keeps eta 1 (DEFAULT_DDIM_ETA above).
GENERATION_DDIM_ETA = 0.0
GENERATION_SAMPLING = dict(sampler="ddim", num_inference_steps=50)  # the defaults of `GenerationPipeline.__call__` and `generate`

# `pipelines`: the models shipped inside the package, name -> folder under arbiscale/weights; the first is the
# default of `from_pretrained()` and of the command. MODEL_CARD.md says what each was trained on.
BUNDLED_UPSCALERS = {"photos": "sr"}
BUNDLED_GENERATORS = {"emoji": "gen-emoji", "landscapes": "gen"}

# `training.alignment`: how L_align weights each sample's noise level. clipped-snr is the paper's min(SNR, max_snr),
# which gives the samples near t = T (where sampling from pure noise makes its first estimate) almost no weight on
# a zero-terminal-SNR schedule; uniform weights every noise level alike.
ALIGN_WEIGHTINGS = ("clipped-snr", "uniform")

# `models.implicit_head`: how the local ensemble's neighbours are blended.
HEAD_BLENDS = ("outputs", "first-layer")

# `metrics.protocols`: name -> (channel, shave beyond ceil(scale), or None for no shave).
METRIC_PROTOCOLS: dict[str, tuple[str, int | None]] = {"liif-benchmark": ("y", 0), "liif-div2k": ("rgb", 6), "paper": ("rgb", None)}
# `metrics.resize`: bicubic conventions for synthesising low-resolution inputs.
RESIZE_METHODS = ("matlab", "pil")
# `metrics.consistency`: measures for SelfSSIM.
SELF_SSIM_MEASURES = ("ssim", "ms-ssim")
# `data.eval_sets`: layouts of an evaluation folder.
EVAL_LAYOUTS = ("folder", "div2k", "benchmark", "split")
# `evaluation.sr`: baselines scored beside the model.
SR_BASELINES = ("bicubic", "nearest")
