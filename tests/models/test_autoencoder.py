import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from arbiscale.errors import CheckpointMismatchError, UserError
from arbiscale.geometry import cell_size, coord_grid
from arbiscale.models import ImplicitAutoencoder, load_component
from arbiscale.models.autoencoder import with_head_blend
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


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("chunk_size", [None, 4096, 17])
def test_banded_decode_equals_decoding_the_whole_coordinate_grid(tiny_autoencoder, batch, chunk_size):
    """(31, 45) from a 5 x 7 latent: non-square, non-integer scales (6.2, 6.43); 17 queries is less than a row."""
    latent = torch.randn(batch, 3, 5, 7)
    size = (31, 45)
    with torch.no_grad():
        whole = tiny_autoencoder.decode_at(latent, coord_grid(size).expand(batch, -1, -1), cell_size(size), chunk_size)
        banded = tiny_autoencoder.decode(latent, size, chunk_size)
    assert banded.dtype == torch.float32 and banded.is_contiguous()
    assert torch.allclose(banded, whole.transpose(1, 2).reshape(batch, 3, *size), atol=1e-6)


def test_decode_into_one_image_of_a_batch(tiny_autoencoder):
    latent = torch.randn(3, 3, 4, 6)
    out = torch.zeros(3, 3, 13, 29)
    with torch.no_grad():
        decoded = tiny_autoencoder.decode(latent[1:2], (13, 29), 50, out=out[1:2])
        expected = tiny_autoencoder.decode(latent, (13, 29))[1]
    assert decoded.data_ptr() == out[1].data_ptr()
    assert torch.allclose(out[1], expected, atol=1e-6)
    assert not out[0].any() and not out[2].any()


class LargestNewStorage(TorchDispatchMode):
    """Records the largest storage any op returns, apart from views of the output being written."""

    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out.untyped_storage().data_ptr()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for tensor in pytree.tree_leaves(result):
            if isinstance(tensor, torch.Tensor) and tensor.untyped_storage().data_ptr() != self.out:
                self.largest = max(self.largest, tensor.untyped_storage().nbytes())
        return result


@pytest.mark.parametrize("blend", ["outputs", "first-layer"])
def test_decode_memory_beyond_the_output_does_not_grow_with_its_size(tiny_autoencoder, blend):
    """A full-size coordinate grid, value tensor or transposed copy would grow 16x from 40 x 60 to 160 x 240."""
    model = with_head_blend(tiny_autoencoder, blend)
    latent = torch.randn(1, 3, 5, 7)
    largest = {}
    for size in ((40, 60), (160, 240)):
        out = torch.empty(1, 3, *size)
        with torch.no_grad(), LargestNewStorage(out) as mode:
            model.decode(latent, size, chunk_size=50, out=out)
        largest[size] = mode.largest
    assert largest[40, 60] == largest[160, 240] < 160 * 240 * 4


def test_gaussian_posterior_encodes_to_its_mean():
    model = ImplicitAutoencoder(**{**get_preset("tiny").autoencoder, "gaussian_posterior": True})
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    mean, logvar = model.posterior(images)
    assert logvar is not None and logvar.shape == mean.shape
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


def test_feature_decoder_residual_branches_start_as_identity():
    """Zero-initialised branches: the mid block (two ResBlocks around attention) passes its input through."""
    torch.manual_seed(0)
    autoencoder = ImplicitAutoencoder(**get_preset("tiny").autoencoder)
    hidden = torch.randn(2, autoencoder.feature_decoder.conv_in.out_channels, 5, 7)
    with torch.no_grad():
        assert torch.allclose(autoencoder.feature_decoder.mid(hidden), hidden, atol=1e-6)


def test_latent_skip_hands_the_latent_itself_to_the_head():
    torch.manual_seed(0)
    config = {**get_preset("tiny").autoencoder, "latent_skip": True}
    autoencoder = ImplicitAutoencoder(**config).eval()
    latent = torch.randn(2, config["latent_channels"], 5, 7)
    with torch.no_grad():
        features = autoencoder.feature_decoder(latent)
        assert features.shape[1] == config["base_channels"] + config["latent_channels"]
        assert torch.equal(features[:, -config["latent_channels"] :], latent)
        assert autoencoder.decode(latent, (13, 17)).shape == (2, 3, 13, 17)


def test_head_blend_conversion_carries_every_weight_and_refuses_to_drop_any(tiny_autoencoder, tmp_path):
    from arbiscale.models.autoencoder import with_head_blend

    converted = with_head_blend(tiny_autoencoder, "first-layer")
    assert converted.config.head_blend == "first-layer"
    original = tiny_autoencoder.state_dict()
    new = converted.state_dict()
    assert set(new) - set(original) == {"head.phase_proj.weight"} and not new["head.phase_proj.weight"].any()
    assert all(torch.equal(new[key], value) for key, value in original.items())
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(converted.encode(images), tiny_autoencoder.encode(images))  # the same latents
    converted.save_pretrained(tmp_path / "converted")
    assert load_component(ImplicitAutoencoder, tmp_path / "converted").config.head_blend == "first-layer"
    with pytest.raises(ValueError, match="would drop trained weights .*head.phase_proj.weight"):
        with_head_blend(converted, "outputs")
