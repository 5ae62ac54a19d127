import pytest
import torch

from arbiscale.geometry import cell_size, coord_grid, pixel_centres
from arbiscale.models import ImplicitHead, neighbour_weights


def random_coords(num: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(1, num, 2, generator=generator) * 2 - 1


@pytest.mark.parametrize("local_ensemble", [True, False])
def test_ensemble_weights_sum_to_one_everywhere(local_ensemble):
    generator = torch.Generator().manual_seed(0)
    coord = torch.cat([random_coords(500, generator), torch.tensor([[[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]]])], dim=1)
    weights = neighbour_weights(coord, (5, 9), local_ensemble)
    assert weights.shape[-1] == (4 if local_ensemble else 1)
    assert (weights >= 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(coord.shape[:2]))


def test_ensemble_weights_are_bilinear_between_cell_centres():
    # feature grid of 4 columns: centres at x = -0.75, -0.25, 0.25, 0.75; x = -0.5 is halfway.
    coord = torch.tensor([[[0.0, -0.5], [0.0, -0.375]]])
    weights = neighbour_weights(coord, (2, 4))
    # rows: y = 0 is halfway between the two row centres (-0.5, 0.5)
    assert torch.allclose(weights[0, 0], torch.full((4,), 0.25))
    assert torch.allclose(weights[0, 1], torch.tensor([0.5 * 0.25, 0.5 * 0.75, 0.5 * 0.25, 0.5 * 0.75]))


def test_query_at_a_cell_centre_uses_that_cell_alone():
    head = ImplicitHead(4, hidden_channels=(16,), out_channels=3)
    features = torch.randn(1, 4, 3, 5)
    centre = torch.tensor([[[(2 * 1 + 1) / 3 - 1, (2 * 3 + 1) / 5 - 1]]])
    cell = torch.tensor([0.1, 0.1])
    with torch.no_grad():
        ensemble = head(features, centre, cell)
        head.local_ensemble = False
        nearest = head(features, centre, cell)
    assert torch.allclose(ensemble, nearest, atol=1e-6)


@pytest.mark.parametrize("feature_unfold", [False, True])
def test_chunked_equals_unchunked(feature_unfold):
    torch.manual_seed(0)
    head = ImplicitHead(6, hidden_channels=(32, 32), feature_unfold=feature_unfold)
    features = torch.randn(2, 6, 7, 4)
    size = (23, 11)
    coord = coord_grid(size).expand(2, -1, -1)
    with torch.no_grad():
        whole = head(features, coord, cell_size(size))
        chunked = head(features, coord, cell_size(size), chunk_size=37)
    assert whole.shape == (2, 23 * 11, 3)
    assert torch.allclose(whole, chunked, atol=1e-6)


@pytest.mark.parametrize("chunk_size", [None, 37, 4])
@pytest.mark.parametrize("feature_unfold", [False, True])
def test_render_into_a_view_equals_forward_on_the_whole_grid(feature_unfold, chunk_size):
    """Bands of whole rows (37 queries: 3 rows of 11) and pieces of a row (4 queries) alike."""
    torch.manual_seed(0)
    head = ImplicitHead(6, hidden_channels=(32, 32), feature_unfold=feature_unfold)
    features = torch.randn(2, 6, 7, 4)
    size = (23, 11)
    out = torch.full((2, 3, 30, 20), float("nan"))
    with torch.no_grad():
        expected = head(features, coord_grid(size).expand(2, -1, -1), cell_size(size)).transpose(1, 2).reshape(2, 3, *size)
        rendered = head.render(features, pixel_centres(size[0]), pixel_centres(size[1]), cell_size(size), out[:, :, 3:26, 4:15], chunk_size)
    assert rendered.data_ptr() == out[:, :, 3:26, 4:15].data_ptr()
    assert torch.allclose(out[:, :, 3:26, 4:15], expected, atol=1e-6)
    out[:, :, 3:26, 4:15] = float("nan")
    assert out.isnan().all()


def test_render_of_an_empty_grid_writes_nothing():
    """A decoding tile whose core holds no pixel centre (outputs smaller than the latent) renders nothing."""
    head = ImplicitHead(6, hidden_channels=(8,))
    with torch.no_grad():
        for ys, xs in ((torch.empty(0), pixel_centres(5)), (pixel_centres(5), torch.empty(0))):
            out = torch.zeros(1, 3, len(ys), len(xs))
            assert head.render(torch.randn(1, 6, 3, 3), ys, xs, cell_size((5, 5)), out, 4).shape == out.shape


def test_split_first_layer_equals_liif_linear_over_concatenation():
    """The per-cell feature projection + per-query geometry projection is LIIF's first layer."""
    torch.manual_seed(0)
    head = ImplicitHead(5, hidden_channels=(8,), out_channels=3, local_ensemble=False)
    features = torch.randn(1, 5, 2, 3)
    coord = torch.tensor([[[0.3, -0.2]]])
    cell = torch.tensor([0.25, 0.5])
    row, col = 1, 1  # the cell containing (0.3, -0.2) on a 2 x 3 grid
    centre = torch.tensor([(2 * row + 1) / 2 - 1, (2 * col + 1) / 3 - 1])
    grid = torch.tensor([2.0, 3.0])
    concat = torch.cat([features[0, :, row, col], (coord[0, 0] - centre) * grid, cell * grid])
    weight = torch.cat([head.feature_proj.weight[:, :, 0, 0], head.geometry_proj.weight], dim=1)
    first = weight @ concat + head.feature_proj.bias
    with torch.no_grad():
        expected = head.mlp(first)
        assert torch.allclose(head(features, coord, cell)[0, 0], expected, atol=1e-5)


def test_head_follows_autocast_and_input_dtype():
    head = ImplicitHead(4, hidden_channels=(16,))
    features = torch.randn(1, 4, 3, 3)
    coord = coord_grid((5, 5)).unsqueeze(0)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(features, coord, cell_size((5, 5)))
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()
