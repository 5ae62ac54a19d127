import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from arbiscale.errors import CheckpointMismatchError, UserError
from arbiscale.models.unet import LatentDenoiser
from arbiscale.pipelines import GenerationPipeline, UpscalePipeline
from arbiscale.sampling import SAMPLERS

STEPS = 3


@pytest.fixture(scope="module")
def generator_pipe(tiny_pipeline):
    return tiny_pipeline(GenerationPipeline, "gen")


def seeded(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def low_res():
    torch.manual_seed(1)
    return torch.rand(1, 3, 10, 14) * 2 - 1


@pytest.mark.parametrize(("kwargs", "expected"), [({"scale": 2.37}, (24, 33)), ({"scale": 3.7}, (37, 52)), ({"size": (50, 20)}, (50, 20)), ({"scale": 0.8}, (8, 11))])
def test_exact_output_sizes(upscaler, low_res, kwargs, expected):
    out = upscaler(low_res, num_inference_steps=2, generator=seeded(0), **kwargs)
    assert out.images.shape == (1, 3, *expected)
    assert out.images.min() >= -1 and out.images.max() <= 1


def test_scale_beyond_the_cap_only_changes_the_render(upscaler, low_res):
    # without the consistency step, which changes the pixels after the render
    out = upscaler(low_res, scale=30, num_inference_steps=2, generator=seeded(0), max_latent_side=16, decode_chunk=4096, lr_consistency=False)
    assert out.images.shape == (1, 3, 300, 420)
    assert out.latents.shape == (1, 3, 12, 16)  # 150 x 210 cells capped to 16 on the long side, multiples of 2
    assert torch.allclose(
        upscaler.autoencoder.decode(out.latents, (30, 42)),
        upscaler(low_res, size=(30, 42), num_inference_steps=2, generator=seeded(0), latent_size=(12, 16), lr_consistency=False).images,
        atol=1e-5,
    )


def test_working_latent_for_the_default_cap(upscaler, low_res):
    out_size, latent = upscaler.working_size((10, 14), scale=2.37)
    assert out_size == (24, 33) and latent == (12, 16)
    assert upscaler(low_res, scale=2.37, num_inference_steps=1, generator=seeded(0)).latents.shape[-2:] == latent


def test_the_default_cap_never_shrinks_the_input(upscaler):
    # tiny: cap 8 x 8 = 64 cells, f = 2. An 80 x 150 input at 2x would be capped to 34 x 64 cells (68 x 128
    # pixels, below the input); the working image keeps the input's resolution instead: 40 x 76 cells
    assert upscaler.working_size((80, 150), scale=2) == ((160, 300), (40, 76))
    assert upscaler.working_size((80, 150), scale=2, max_latent_side=64) == ((160, 300), (34, 64))  # an explicit cap is kept


def test_memory_options_never_change_the_working_size(upscaler, low_res):
    # 10 x 14 at 12x: 60 x 84 cells, capped to 46 x 64 by the default cap, tiled or not (tiling used to lift the cap)
    sizes = set()
    for tiling in (None, dict(tile_size=16), dict(max_memory="2GB")):
        if tiling is not None:
            upscaler.enable_tiling(**tiling)
        try:
            sizes.add(upscaler(low_res, scale=12, num_inference_steps=1, generator=seeded(0)).latents.shape)
        finally:
            upscaler.disable_tiling()
    assert sizes == {(1, 3, 46, 64)}


def test_same_seed_same_image_other_seed_other_image(upscaler, low_res):
    first = upscaler(low_res, scale=2.37, num_inference_steps=STEPS, generator=seeded(3)).images
    again = upscaler(low_res, scale=2.37, num_inference_steps=STEPS, generator=seeded(3)).images
    other = upscaler(low_res, scale=2.37, num_inference_steps=STEPS, generator=seeded(4)).images
    assert torch.equal(first, again)
    assert (first - other).abs().max() > 1e-3


def test_output_depends_on_the_input_image(upscaler, low_res):
    first = upscaler(low_res, scale=2, num_inference_steps=STEPS, generator=seeded(0)).images
    other = upscaler(-low_res, scale=2, num_inference_steps=STEPS, generator=seeded(0)).images
    assert (first - other).abs().max() > 1e-3


def test_samples_are_image_major_and_each_fixed_by_its_generator(upscaler, low_res):
    batch = torch.cat([low_res, low_res.flip(-1)])
    out = upscaler(batch, scale=2, num_inference_steps=STEPS, num_samples=2, generator=[seeded(s) for s in (5, 6, 7, 8)])
    assert out.images.shape == (4, 3, 20, 28)
    alone = upscaler(batch[1:], scale=2, num_inference_steps=STEPS, generator=seeded(7)).images
    assert torch.allclose(out.images[2], alone[0], atol=1e-5)
    assert (out.images[2] - out.images[3]).abs().max() > 1e-3


def test_pil_input_matches_tensor_input(upscaler, low_res):
    array = ((low_res[0] + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    quantised = torch.from_numpy(array).permute(2, 0, 1).float().div(127.5).sub(1)[None]
    from_pil = upscaler(Image.fromarray(array), scale=2, num_inference_steps=STEPS, generator=seeded(0)).images
    from_tensor = upscaler(quantised, scale=2, num_inference_steps=STEPS, generator=seeded(0)).images
    assert torch.allclose(from_pil, from_tensor, atol=1e-5)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_runs_by_name(upscaler, low_res, sampler):
    out = upscaler(low_res, scale=1.5, num_inference_steps=2, sampler=sampler, generator=seeded(0))
    assert out.images.shape == (1, 3, 15, 21) and torch.isfinite(out.images).all()


def test_bfloat16_autocast_on_cpu_stays_close(upscaler, low_res):
    full = upscaler(low_res, scale=2, num_inference_steps=STEPS, generator=seeded(0)).images
    half = upscaler(low_res, scale=2, num_inference_steps=STEPS, generator=seeded(0), autocast_dtype=torch.bfloat16).images
    assert half.dtype == torch.float32
    assert (half - full).abs().mean() < 0.005


def test_render_decodes_a_batch_in_row_bands_and_clamps(tiny_pipeline):
    """A decode chunk smaller than one row (13 < 34 queries), 3 images; the head is made louder so
    that the clamp has work to do."""
    pipe = tiny_pipeline(UpscalePipeline, "sr")
    with torch.no_grad():
        pipe.autoencoder.head.mlp[-1].weight.mul_(50)
        latents = torch.randn(3, 3, 6, 8)
        images = pipe.render(latents, (21, 34), decode_chunk=13)
        unclamped = torch.cat([pipe.autoencoder.decode(latent[None], (21, 34), None) for latent in latents])
    assert (unclamped.abs() > 1).any()
    assert images.shape == (3, 3, 21, 34) and images.dtype == torch.float32
    assert torch.allclose(images, unclamped.clamp(-1, 1), atol=1e-6)
    with pytest.raises(UserError, match="decode chunk"):
        pipe.render(latents, (21, 34), decode_chunk=0)


def test_bad_calls_are_user_errors(upscaler, low_res):
    with pytest.raises(UserError, match="either a scale"):
        upscaler(low_res, num_inference_steps=1)
    with pytest.raises(UserError, match="scale"):
        upscaler(low_res, scale=float("nan"), num_inference_steps=1)
    with pytest.raises(UserError, match="eta"):
        upscaler(low_res, scale=2, sampler="unipc", eta=0.5, num_inference_steps=1)
    with pytest.raises(UserError, match="unknown sampler"):
        upscaler(low_res, scale=2, sampler="euler", num_inference_steps=1)
    with pytest.raises(UserError, match="RGB"):
        upscaler(low_res[:, :1], scale=2, num_inference_steps=1)
    with pytest.raises(UserError, match="float16 needs a GPU"):
        upscaler(low_res, scale=2, num_inference_steps=1, autocast_dtype=torch.float16)


def test_generation_renders_one_latent_at_every_size(generator_pipe):
    sizes = [(16, 16), (24, 40)]
    out = generator_pipe(sizes, num_images=2, num_inference_steps=STEPS, generator=[seeded(0), seeded(1)])
    assert [tuple(images.shape) for images in out.images] == [(2, 3, 16, 16), (2, 3, 24, 40)]
    assert out.latents.shape == (2, 3, 8, 8)
    for size, images in zip(sizes, out.images):
        assert torch.allclose(images, generator_pipe.autoencoder.decode(out.latents, size).clamp(-1, 1), atol=1e-5)
    again = generator_pipe([(24, 40)], num_images=1, num_inference_steps=STEPS, generator=[seeded(1)])
    assert torch.allclose(again.images[0][0], out.images[1][1], atol=1e-5)
    other = generator_pipe([(24, 40)], num_images=1, num_inference_steps=STEPS, generator=[seeded(2)])
    assert (other.images[0][0] - out.images[1][1]).abs().max() > 1e-3


def test_generation_latent_size_must_fit_the_unet(generator_pipe):
    with pytest.raises(UserError, match="multiples of 2"):
        generator_pipe([(8, 8)], latent_size=(5, 6), num_inference_steps=1)
    out = generator_pipe((8, 12), latent_size=(4, 6), num_inference_steps=1)
    assert out.latents.shape == (1, 3, 4, 6) and out.images[0].shape == (1, 3, 8, 12)


@pytest.mark.parametrize(("pipeline_class", "task"), [(UpscalePipeline, "sr"), (GenerationPipeline, "gen")])
def test_save_load_round_trip_gives_identical_outputs(tmp_path, pipeline_class, task, tiny_pipeline):
    pipe = tiny_pipeline(pipeline_class, task)
    pipe.save_pretrained(tmp_path)
    loaded = pipeline_class.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.denoiser.config.latent_scale == 50.0
    if task == "sr":
        image = torch.rand(1, 3, 6, 10) * 2 - 1
        before = pipe(image, scale=2.5, num_inference_steps=STEPS, generator=seeded(0)).images
        after = loaded(image, scale=2.5, num_inference_steps=STEPS, generator=seeded(0)).images
    else:
        before = pipe([(12, 20)], num_inference_steps=STEPS, generator=seeded(0)).images[0]
        after = loaded([(12, 20)], num_inference_steps=STEPS, generator=seeded(0)).images[0]
    assert torch.allclose(before, after, atol=1e-5)


@pytest.fixture
def saved_upscaler(tmp_path, tiny_pipeline):
    tiny_pipeline(UpscalePipeline, "sr").save_pretrained(tmp_path)
    return tmp_path


def test_missing_weight_is_a_checkpoint_mismatch(saved_upscaler):
    weights = saved_upscaler / "denoiser" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state.pop(next(key for key in state if key.endswith("conv_in.weight")))
    save_file(state, weights)
    with pytest.raises(CheckpointMismatchError, match="conv_in.weight"):
        UpscalePipeline.from_pretrained(saved_upscaler)


def test_unexpected_weight_is_a_checkpoint_mismatch(saved_upscaler):
    weights = saved_upscaler / "autoencoder" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state["head.extra"] = torch.zeros(3)
    save_file(state, weights)
    with pytest.raises(CheckpointMismatchError, match="head.extra"):
        UpscalePipeline.from_pretrained(saved_upscaler)


def test_loading_refuses_the_other_task_and_non_models(saved_upscaler, tmp_path_factory, tiny_pipeline):
    with pytest.raises(UserError, match="GenerationPipeline"):
        GenerationPipeline.from_pretrained(saved_upscaler)
    with pytest.raises(UserError, match="model_index.json"):
        UpscalePipeline.from_pretrained(tmp_path_factory.mktemp("empty"))
    with pytest.raises(UserError, match="trained for task 'gen'"):
        up = tiny_pipeline(UpscalePipeline, "sr")
        UpscalePipeline(up.autoencoder, LatentDenoiser.from_preset("tiny", "gen"), up.scheduler)


def test_mismatched_latent_channels_are_refused(saved_upscaler):
    config_file = saved_upscaler / "denoiser" / "config.json"
    config = json.loads(config_file.read_text())
    config["latent_channels"] = 4
    config_file.write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError):
        UpscalePipeline.from_pretrained(saved_upscaler)
