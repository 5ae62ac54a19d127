"""`arbiscale serve`: the upscaler and the generator as a local web page (Gradio), fully offline.

Upscale tab: an uploaded photo at a scale or an exact WIDTHxHEIGHT, the sampling settings, several
samples, each shown against bicubic in a before/after slider and offered as a PNG download.
Generate tab: one latent sampled from a seed, re-rendered at any size from a slider without
sampling again (the implicit decoder renders any resolution). One job at a time per model, the
rest queued up to a bound and then refused with a busy message; uploads and outputs have size
limits; bad inputs are answered in the page. Offline: Gradio serves its page and fonts from the
package (no CDN), and analytics are off.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import torch
from PIL import Image

from ..choices import DEFAULT_DDIM_ETA, DEFAULT_SAMPLING, GENERATION_DDIM_ETA, GENERATION_SAMPLING, SAMPLER_NAMES
from ..data.images import image_to_tensor, tensor_to_image
from ..errors import UserError
from ..geometry import format_size, parse_size
from ..pipelines import GenerationPipeline, UpscalePipeline
from ..sampling.sizes import output_size


@dataclass(frozen=True)
class Limits:
    """What one request may ask for: the longest output side, the uploaded image's pixels and samples."""

    max_side: int = 2048
    max_upload_pixels: int = 4096 * 4096
    max_samples: int = 4
    max_queue: int = 8
    max_upload: str = "50mb"


def refuse_image_bombs(max_pixels: int) -> None:
    """Make Pillow refuse, before decoding, any image of more than `max_pixels` (a decompression bomb:
    a small file that decodes to gigabytes). Process-wide: for the server process."""
    import warnings

    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def _check_upload(image: Image.Image | None, limits: Limits) -> Image.Image:
    if image is None:
        raise UserError("upload an image first")
    if image.width * image.height > limits.max_upload_pixels:
        raise UserError(f"the upload is {image.width}x{image.height}, over the {limits.max_upload_pixels / 1e6:.0f} megapixel limit: upload a smaller image")
    return image.convert("RGB")


def _requested_size(image: Image.Image, scale: float | None, size_text: str, limits: Limits) -> tuple[float | None, tuple[int, int] | None, tuple[int, int]]:
    """(scale, size, output (H, W)) from the form: an exact WIDTHxHEIGHT when given, else the scale."""
    size = None
    if size_text and size_text.strip():
        try:
            size = parse_size(size_text.strip())
        except ValueError as error:
            raise UserError(f"size: {error}") from None
        scale = None
    elif scale is None or not scale >= 1:
        raise UserError("give a scale of at least 1 (e.g. 4) or a size WIDTHxHEIGHT (e.g. 1920x1080)")
    out = output_size((image.height, image.width), scale, size)
    if max(out) > limits.max_side:
        raise UserError(f"the output would be {format_size(out)}, over this server's {limits.max_side}-pixel side limit: ask for a smaller output")
    return scale, size, out


def _save_png(image: Image.Image, name: str) -> str:
    folder = Path(tempfile.mkdtemp(prefix="arbiscale-"))
    path = folder / name
    image.save(path)
    return str(path)


def _user_errors(function):
    """Run a callback so that a user mistake becomes a message in the page, not a crash."""

    def wrapped(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except UserError as error:
            raise gr.Error(str(error)) from None

    wrapped.__name__ = function.__name__
    return wrapped


def build_app(upscaler: UpscalePipeline | None, generator: GenerationPipeline | None, limits: Limits = Limits()) -> gr.Blocks:
    """The page for the given pipelines (either may be None: its tab is left out)."""
    if upscaler is None and generator is None:
        raise UserError("nothing to serve: give an upscale or a generation model")
    device = (upscaler or generator).device

    def upscale(image, scale, size_text, sampler, steps, strength, seed, samples, progress=gr.Progress(track_tqdm=True)):
        image = _check_upload(image, limits)
        scale, size, out = _requested_size(image, scale, size_text, limits)
        samples = int(samples)
        if not 1 <= samples <= limits.max_samples:
            raise UserError(f"samples must be between 1 and {limits.max_samples}")
        seed = int(seed)
        result = upscaler(
            image_to_tensor(image).to(device),
            scale=scale,
            size=size,
            sampler=sampler,
            num_inference_steps=int(steps),
            strength=float(strength),
            generator=[torch.Generator().manual_seed(seed + k) for k in range(samples)],
            num_samples=samples,
        )
        bicubic = image.resize((out[1], out[0]), Image.Resampling.BICUBIC)
        outputs = [tensor_to_image(picture) for picture in result.images]
        tag = f"x{scale:g}" if scale is not None else format_size(out)
        files = [_save_png(picture, f"upscaled_{tag}_seed{seed + k}.png") for k, picture in enumerate(outputs)]
        return (bicubic, outputs[0]), [(picture, f"seed {seed + k}") for k, picture in enumerate(outputs)], files

    def generate(seed, side, progress=gr.Progress(track_tqdm=True)):
        result = generator((int(side), int(side)), generator=torch.Generator().manual_seed(int(seed)))
        picture = tensor_to_image(result.images[0][0])
        return picture, result.latents.cpu(), _save_png(picture, f"seed{int(seed)}_{int(side)}x{int(side)}.png")

    def rerender(latents, side, seed):
        if latents is None:
            raise UserError("generate an image first")
        with torch.no_grad():
            rendered = generator.render(latents.to(device), (int(side), int(side)), 65536)
        picture = tensor_to_image(rendered[0])
        return picture, _save_png(picture, f"seed{int(seed)}_{int(side)}x{int(side)}.png")

    with gr.Blocks(title="arbiscale", analytics_enabled=False) as app:
        gr.Markdown("# arbiscale\nUpsample a photo to any scale or size, or generate an image and render it at any resolution.")
        if upscaler is not None:
            with gr.Tab("Upscale"):
                with gr.Row():
                    with gr.Column():
                        source = gr.Image(type="pil", label="photo", elem_id="upscale-input", image_mode="RGB")
                        with gr.Row():
                            scale = gr.Number(value=4, minimum=1, label="scale", elem_id="upscale-scale")
                            size_text = gr.Textbox(label="or size WIDTHxHEIGHT", placeholder="e.g. 1920x1080", elem_id="upscale-size")
                        with gr.Accordion("sampling", open=False):
                            sampler = gr.Dropdown(list(SAMPLER_NAMES), value=DEFAULT_SAMPLING["sampler"], label="sampler")
                            steps = gr.Slider(1, 200, value=DEFAULT_SAMPLING["num_inference_steps"], step=1, label="steps (the paper: 200)")
                            strength = gr.Slider(0.05, 1.0, value=DEFAULT_SAMPLING["strength"], step=0.05, label="strength (1: from pure noise)")
                            seed = gr.Number(value=0, precision=0, label="seed")
                            samples = gr.Slider(1, limits.max_samples, value=1, step=1, label="samples")
                        run = gr.Button("Upscale", variant="primary", elem_id="upscale-run")
                    with gr.Column():
                        compare = gr.ImageSlider(label="bicubic | arbiscale", elem_id="upscale-compare", type="pil")
                        gallery = gr.Gallery(label="samples", elem_id="upscale-gallery", columns=2)
                        downloads = gr.File(label="download", file_count="multiple", elem_id="upscale-files")
                run.click(
                    _user_errors(upscale),
                    [source, scale, size_text, sampler, steps, strength, seed, samples],
                    [compare, gallery, downloads],
                    concurrency_id="upscale",
                    concurrency_limit=1,
                )
        if generator is not None:
            with gr.Tab("Generate"):
                latents = gr.State(None)
                with gr.Row():
                    with gr.Column():
                        gen_seed = gr.Number(value=0, precision=0, label="seed", elem_id="generate-seed")
                        side = gr.Slider(32, limits.max_side, value=256, step=8, label="size (pixels a side)", elem_id="generate-side")
                        make = gr.Button("Generate", variant="primary", elem_id="generate-run")
                        gr.Markdown("Moving the size re-renders the same latent: no new sampling.")
                    with gr.Column():
                        picture = gr.Image(label="generated", elem_id="generate-output", format="png")
                        download = gr.File(label="download", elem_id="generate-file")
                make.click(_user_errors(generate), [gen_seed, side], [picture, latents, download], concurrency_id="generate", concurrency_limit=1)
                side.release(_user_errors(rerender), [latents, side, gen_seed], [picture, download], concurrency_id="generate", concurrency_limit=1)
        gr.Markdown(
            f"Default sampling: upscale {DEFAULT_SAMPLING['sampler']}, {DEFAULT_SAMPLING['num_inference_steps']} steps, eta {DEFAULT_DDIM_ETA:g}, "
            f"LR consistency {'on' if DEFAULT_SAMPLING['lr_consistency'] else 'off'}"
            + (f"; generate {GENERATION_SAMPLING['sampler']}, {GENERATION_SAMPLING['num_inference_steps']} steps, eta {GENERATION_DDIM_ETA:g}" if generator is not None else "")
            + f". Outputs are limited to {limits.max_side} pixels a side."
        )
    app.queue(max_size=limits.max_queue, default_concurrency_limit=1)
    return app
