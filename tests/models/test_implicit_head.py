import pytest
import torch

from arbiscale.geometry import cell_size, coord_grid, pixel_centres
from arbiscale.models import ImplicitHead
from arbiscale.models.implicit_head import axis_neighbours


def neighbour_weights(coord: torch.Tensor, feature_size: tuple[int, int], local_ensemble: bool = True) -> torch.Tensor:
    """(..., K) blend weights of each (y, x) coordinate's K cells, as `ImplicitHead.query` forms them."""
    _, weights_y = axis_neighbours(coord[..., 0], feature_size[0], local_ensemble)
    _, weights_x = axis_neighbours(coord[..., 1], feature_size[1], local_ensemble)
    return torch.stack([wy * wx for wy in weights_y for wx in weights_x], dim=-1)


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


HEADS = [("outputs", False, True), ("outputs", True, True), ("first-layer", False, True), ("first-layer", True, False)]


@pytest.mark.parametrize("chunk_size", [None, 37, 4])
@pytest.mark.parametrize(("blend", "feature_unfold", "local_ensemble"), HEADS)
def test_render_into_a_view_equals_forward_on_the_whole_grid(blend, feature_unfold, local_ensemble, chunk_size):
    """Bands of whole rows (37 queries: 3 rows of 11) and pieces of a row (4 queries) alike; the
    first-layer blend renders a grid by its separable form, which must equal its per-query form."""
    torch.manual_seed(0)
    head = ImplicitHead(6, hidden_channels=(32, 32), feature_unfold=feature_unfold, local_ensemble=local_ensemble, blend=blend)
    if blend == "first-layer":
        torch.nn.init.normal_(head.phase_proj.weight)
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


@pytest.mark.parametrize("blend", ["outputs", "first-layer"])
def test_a_window_of_the_grid_renders_as_in_the_whole_grid(blend):
    """Tiled decoding renders windows (`ys`, `xs` spans) of the output grid: the same values."""
    head = random_first_layer_head() if blend == "first-layer" else ImplicitHead(6, hidden_channels=(32, 32))
    features = torch.randn(1, 6, 5, 4)
    size = (19, 13)
    ys, xs = pixel_centres(size[0]), pixel_centres(size[1])
    with torch.no_grad():
        whole = head.render_image(features, size)
        window = head.render(features, ys[4:15], xs[7:], cell_size(size), torch.empty(1, 3, 11, 6), chunk_size=5)
    assert torch.allclose(window, whole[:, :, 4:15, 7:], atol=1e-6)


@pytest.mark.parametrize("blend", ["outputs", "first-layer"])
def test_render_of_an_empty_grid_writes_nothing(blend):
    """A decoding tile whose core holds no pixel centre (outputs smaller than the latent) renders nothing."""
    head = ImplicitHead(6, hidden_channels=(8,), blend=blend)
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


def random_first_layer_head(channels: int = 6) -> ImplicitHead:
    torch.manual_seed(0)
    head = ImplicitHead(channels, hidden_channels=(32, 32), blend="first-layer")
    torch.nn.init.normal_(head.phase_proj.weight)  # a trained phase term, not the zero it starts at
    return head


@pytest.mark.parametrize("blend", ["outputs", "first-layer"])
def test_values_are_continuous_across_cell_borders(blend):
    """The point of the local ensemble: no seam where the nearest cell changes (x = 0 here)."""
    head = random_first_layer_head() if blend == "first-layer" else ImplicitHead(6, hidden_channels=(32, 32))
    features = torch.randn(1, 6, 4, 4)
    eps = 1e-5
    coord = torch.tensor([[[0.3, -eps], [0.3, eps], [-0.6, -0.5 - eps], [-0.6, -0.5 + eps]]])
    with torch.no_grad():
        values = head(features, coord, torch.tensor([0.05, 0.05]))
    assert torch.allclose(values[0, 0], values[0, 1], atol=1e-3) and torch.allclose(values[0, 2], values[0, 3], atol=1e-3)


@pytest.mark.parametrize(("blend", "rows_per_query"), [("outputs", 4), ("first-layer", 1)])
def test_hidden_layers_run_once_per_query_with_the_first_layer_blend(blend, rows_per_query):
    head = ImplicitHead(6, hidden_channels=(16, 16), blend=blend)
    rows = []
    head.mlp[1].register_forward_hook(lambda module, inputs, output: rows.append(inputs[0].shape[:-1].numel()))
    coord = coord_grid((9, 7)).expand(2, -1, -1)
    with torch.no_grad():
        head(torch.randn(2, 6, 3, 3), coord, cell_size((9, 7)))
    assert sum(rows) == 2 * 9 * 7 * rows_per_query


def test_first_layer_blend_chunked_and_rendered_equal_forward():
    head = random_first_layer_head()
    features = torch.randn(2, 6, 5, 3)
    size = (17, 11)
    coord = coord_grid(size).expand(2, -1, -1)
    with torch.no_grad():
        whole = head(features, coord, cell_size(size))
        chunked = head(features, coord, cell_size(size), chunk_size=29)
        rendered = head.render_image(features, size, chunk_size=13)
    assert torch.allclose(whole, chunked, atol=1e-6)
    assert torch.allclose(rendered, whole.transpose(1, 2).reshape(2, 3, *size), atol=1e-6)


def test_unknown_blend_is_refused():
    with pytest.raises(ValueError, match="blend must be one of outputs, first-layer"):
        ImplicitHead(4, hidden_channels=(8,), blend="average")
