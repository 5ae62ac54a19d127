import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from arbiscale.errors import CheckpointMismatchError, UserError
from arbiscale.models import ImplicitAutoencoder, load_component
from arbiscale.presets import PRESETS, get_preset


@pytest.fixture
def tiny_autoencoder() -> ImplicitAutoencoder:
    torch.manual_seed(0)
    return ImplicitAutoencoder(**get_preset("tiny").autoencoder).eval()


@pytest.mark.parametrize(("size", "output"), [((16, 24), (40, 61)), ((24, 16), (37, 23)), ((16, 16), (16, 16))])
def test_exact_non_square_output_shapes_at_non_integer_scales(tiny_autoencoder, size, output):
    images = torch.rand(2, 3, *size) * 2 - 1
    with torch.no_grad():
        latent = tiny_autoencoder.encode(images)
        factor = tiny_autoencoder.downsample_factor
        assert latent.shape == (2, 3, size[0] // factor, size[1] // factor)
        assert tiny_autoencoder.decode(latent, output).shape == (2, 3, *output)


def test_decode_chunked_equals_unchunked(tiny_autoencoder):
    latent = torch.randn(1, 3, 5, 7)
    with torch.no_grad():
        whole = tiny_autoencoder.decode(latent, (31, 45), chunk_size=None)
        chunked = tiny_autoencoder.decode(latent, (31, 45), chunk_size=101)
    assert torch.allclose(whole, chunked, atol=1e-6)


def test_gaussian_posterior_samples_around_the_mean():
    model = ImplicitAutoencoder(**{**get_preset("tiny").autoencoder, "gaussian_posterior": True})
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    mean, logvar = model.posterior(images)
    assert logvar is not None and logvar.shape == mean.shape
    first = model.encode(images, sample=True, generator=torch.Generator().manual_seed(1))
    again = model.encode(images, sample=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, again)
    assert not torch.equal(first, mean)
    assert torch.equal(model.encode(images), mean)


def test_checkpoint_round_trip(tiny_autoencoder, tmp_path):
    tiny_autoencoder.save_pretrained(tmp_path)
    loaded = load_component(ImplicitAutoencoder, tmp_path)
    latent = torch.randn(1, 3, 4, 6)
    with torch.no_grad():
        assert torch.equal(tiny_autoencoder.decode(latent, (13, 29)), loaded.decode(latent, (13, 29)))


def test_loading_names_missing_and_unexpected_keys(tiny_autoencoder, tmp_path):
    tiny_autoencoder.save_pretrained(tmp_path)
    weights_file = next(tmp_path.glob("*.safetensors"))
    weights = load_file(weights_file)
    removed = sorted(weights)[0]
    del weights[removed]
    weights["head.extra.weight"] = torch.zeros(1)
    save_file(weights, weights_file)
    with pytest.raises(CheckpointMismatchError) as error:
        load_component(ImplicitAutoencoder, tmp_path)
    assert removed in str(error.value) and "head.extra.weight" in str(error.value)


def test_loading_a_config_of_another_size_is_refused(tiny_autoencoder, tmp_path):
    tiny_autoencoder.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["base_channels"] = 32
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError):
        load_component(ImplicitAutoencoder, tmp_path)


def test_loading_from_a_folder_without_a_model(tmp_path):
    with pytest.raises(UserError, match="config.json"):
        load_component(ImplicitAutoencoder, tmp_path)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_with_its_downsample_factor(name):
    preset = get_preset(name)
    with torch.device("meta"):
        model = ImplicitAutoencoder(**preset.autoencoder)
    assert model.downsample_factor == 2 ** (len(preset.autoencoder["channel_mult"]) - 1)


def test_unknown_preset_lists_known_ones():
    with pytest.raises(UserError, match="tiny"):
        get_preset("huge")


def test_mlp_only_ablation_renders_the_latent_directly():
    model = ImplicitAutoencoder(**{**get_preset("tiny").autoencoder, "use_feature_decoder": False})
    assert not any(name.startswith("feature_decoder.") for name, _ in model.named_parameters())
    with torch.no_grad():
        assert model.decode(torch.randn(1, 3, 4, 4), (9, 7)).shape == (1, 3, 9, 7)
