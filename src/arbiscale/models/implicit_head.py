"""LIIF-style implicit head: renders a feature map at arbitrary continuous coordinates.

The first MLP layer acts on [feature, relative offset, cell]; it is split into a feature
projection, computed once per latent cell, and a small geometry projection per query, which
is the same function as LIIF's single linear layer over the concatenation, at a fraction of
the cost when many queries share a cell.

Two ways to blend the local ensemble's four neighbouring cells (`blend`):
- "outputs" (LIIF, the paper): each neighbour runs the whole MLP on its own relative offset and
  the predictions are blended by area;
- "first-layer": the first layer is linear, so the neighbours' first-layer pre-activations are
  blended instead and the hidden layers run once per query (about 4x less work). The blended
  offsets cancel (bilinear weights reproduce the position), so the query's position inside its
  cell enters through a periodic phase term, sin/cos(2 pi k position / cell) for k = 1, 2,
  continuous across cell borders.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import HEAD_BLENDS as BLENDS
from ..geometry import cell_size, pixel_centres

# MLP rows (queries x ensemble neighbours) per step: 16384 x 128 float32 activations fit the L2/L3
# caches; measured fastest on CPU in benchmarks/decoder_throughput.py.
CACHE_ROWS = 16384
# Harmonics of the in-cell phase term of the "first-layer" blend: sin/cos(2 pi k position), k = 1..
PHASE_HARMONICS = 2


def axis_neighbours(coord: torch.Tensor, length: int, local_ensemble: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Cell indices along one axis and their blend weights for coordinates in [-1, 1].

    With the local ensemble the two cells whose centres bracket the coordinate are blended
    linearly, which equals LIIF's opposite-rectangle area weighting; at the border both
    indices clamp to the same cell. Without it, the cell containing the coordinate alone.
    """
    position = (coord + 1) * (length / 2)
    if not local_ensemble:
        index = position.floor().clamp(0, length - 1).long()
        return [index], [torch.ones_like(coord)]
    lower = (position - 0.5).floor()
    frac = (position - 0.5 - lower).clamp(0, 1)
    lower_index = lower.clamp(0, length - 1).long()
    upper_index = (lower + 1).clamp(0, length - 1).long()
    return [lower_index, upper_index], [1 - frac, frac]


class ImplicitHead(nn.Module):
    """f_theta: an MLP over (nearby latent feature, relative offset, output cell size)."""

    def __init__(
        self,
        in_channels: int,
        hidden_channels: tuple[int, ...] = (256, 256, 256, 256),
        out_channels: int = 3,
        local_ensemble: bool = True,
        feature_unfold: bool = False,
        cell_decode: bool = True,
        blend: str = "outputs",
    ) -> None:
        super().__init__()
        if blend not in BLENDS:
            raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
        self.local_ensemble = local_ensemble
        self.feature_unfold = feature_unfold
        self.cell_decode = cell_decode
        feature_dim = in_channels * (9 if feature_unfold else 1)
        self.feature_proj = nn.Conv2d(feature_dim, hidden_channels[0], kernel_size=1)
        self.geometry_proj = nn.Linear(4 if cell_decode else 2, hidden_channels[0], bias=False)
        # Zero at first, so a head converted from "outputs" starts as that head's blended version.
        self.phase_proj = nn.Linear(4 * PHASE_HARMONICS, hidden_channels[0], bias=False) if blend == "first-layer" else None
        if self.phase_proj is not None:
            nn.init.zeros_(self.phase_proj.weight)
        # The rest of the network, on the first layer's pre-activation: ReLU, Linear, ..., ReLU, Linear.
        layers: list[nn.Module] = []
        widths = list(hidden_channels) + [out_channels]
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [nn.ReLU(inplace=True), nn.Linear(width_in, width_out)]
        self.mlp = nn.Sequential(*layers)

    def project_features(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, h*w, hidden) float32: the per-cell part of the first layer, once per cell.

        Besides the feature projection it holds the cell-centre part of the geometry term (see
        `query`), so a query only adds the part that depends on its own coordinate and cell.
        """
        height, width = features.shape[-2:]
        if self.feature_unfold:
            features = F.unfold(features, 3, padding=1).view(features.shape[0], -1, height, width)
        projected = self.feature_proj(features).float().flatten(2).transpose(1, 2)
        rows = torch.arange(height, device=features.device, dtype=torch.float32) * 2 + 1 - height
        cols = torch.arange(width, device=features.device, dtype=torch.float32) * 2 + 1 - width
        centres = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(-1, 2)  # centre * grid size
        with torch.autocast(features.device.type, enabled=False):
            return (projected - centres @ self.geometry_proj.weight[:, :2].float().t()).contiguous()

    def query(self, projected: torch.Tensor, feature_size: tuple[int, int], coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Predict (B, Q, out) at coordinates (B, Q, 2) with cells (B, Q, 2) from projected features.

        The geometry term G @ [(coord - centre) * grid, cell * grid] splits into a per-query part
        (coord, cell) and a per-cell part (centre); the per-cell part is folded into the projected
        features, so the geometry projection runs once per query and is shared by its K ensemble
        neighbours. The K neighbours then run through the hidden layers as one batch of rows; the
        output layer is linear and the blend weights sum to one, so hidden states are blended before
        it. The first layer stays float32 under autocast: it adds terms of similar size that cancel.
        """
        batch, num_queries = coord.shape[:2]
        height, width = feature_size
        grid_scale = coord.new_tensor([height, width])
        rows, row_weights = axis_neighbours(coord[..., 0], height, self.local_ensemble)
        cols, col_weights = axis_neighbours(coord[..., 1], width, self.local_ensemble)
        offset = torch.arange(batch, device=coord.device).view(batch, 1) * (height * width)
        flat = torch.stack([r * width + c + offset for r in rows for c in cols], dim=-1).reshape(-1)
        weight = torch.stack([wr * wc for wr in row_weights for wc in col_weights], dim=-1)
        geometry = coord * grid_scale
        if self.cell_decode:
            geometry = torch.cat([geometry, cell * grid_scale], dim=-1)
        rows_weight = weight.view(batch * num_queries, 1, -1)
        with torch.autocast(coord.device.type, enabled=False):
            per_query = geometry.reshape(batch * num_queries, -1) @ self.geometry_proj.weight.to(coord.dtype).t()
            state = projected.reshape(-1, projected.shape[-1]).index_select(0, flat).view(batch * num_queries, weight.shape[-1], -1)
            if self.phase_proj is not None:
                state = torch.bmm(rows_weight, state).add_(per_query.unsqueeze(1))
                state = state.add_((self.phase_features(coord * grid_scale) @ self.phase_proj.weight.t()).view_as(state))
            else:
                state = state.add_(per_query.unsqueeze(1))
        hidden, output_layer = self.mlp[:-1], self.mlp[-1]
        state = hidden(state)
        if self.phase_proj is None:
            state = torch.bmm(rows_weight.to(state.dtype), state)
        return output_layer(state).view(batch, num_queries, -1)

    def forward(self, features: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """Render features (B, C, h, w) at coord (B, Q, 2); at most `chunk_size` queries per step.

        On the CPU, steps are also capped at CACHE_ROWS MLP rows whatever `chunk_size` allows: the
        MLP's activations then stay in cache, which is faster than one large matmul per chunk.
        """
        batch, num_queries = coord.shape[:2]
        if cell.dim() < 3:
            cell = cell.reshape(-1, 1, 2)
        cell = cell.to(coord.dtype).expand(batch, num_queries, 2)
        projected = self.project_features(features)
        size = features.shape[-2:]
        step = self.queries_per_step(batch, num_queries, chunk_size, coord.device)
        if step >= num_queries:
            return self.query(projected, size, coord, cell)
        pieces = [self.query(projected, size, coord[:, start : start + step], cell[:, start : start + step]) for start in range(0, num_queries, step)]
        return torch.cat(pieces, dim=1)

    @staticmethod
    def axis_phase(scaled: torch.Tensor) -> torch.Tensor:
        """(...) coordinates along one axis times its grid size -> (..., 2 * PHASE_HARMONICS): sin, then
        cos, of pi * k * that for k = 1.. (coord * size = 2 * position - size, so pi * k * that is
        2 pi k position up to a constant phase)."""
        angles = torch.stack([scaled * (torch.pi * k) for k in range(1, PHASE_HARMONICS + 1)], dim=-1)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    @staticmethod
    def phase_features(scaled_coord: torch.Tensor) -> torch.Tensor:
        """(B, Q, 2) coordinates times the grid size -> (B*Q, 4 * PHASE_HARMONICS): both axes' phase
        features interleaved (y, x, y, x, ...), so `phase_proj`'s even inputs are y's, its odd ones x's."""
        per_axis = [ImplicitHead.axis_phase(scaled_coord[..., axis]) for axis in (0, 1)]
        return torch.stack(per_axis, dim=-1).reshape(-1, 4 * PHASE_HARMONICS)

    def queries_per_step(self, batch: int, num_queries: int, chunk_size: int | None, device: torch.device) -> int:
        """Queries per MLP step: `chunk_size` (all when None), capped on the CPU at CACHE_ROWS gathered
        neighbour rows (measured: the first-layer blend at 16384 queries a step ran at 0.20-0.26 MP/s,
        at 4096 at 0.45; its separable grid render at 0.50 and 0.70, benchmarks/decoder_throughput.py)."""
        step = num_queries if chunk_size is None else chunk_size
        if device.type == "cpu":
            # Both blends gather the K neighbours' first-layer rows; what must stay in cache is those.
            step = min(step, max(1, CACHE_ROWS // (batch * (4 if self.local_ensemble else 1))))
        return step

    def render(self, features: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor, out: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """Render features (B, C, h, w) at every (y, x) of the grid `ys` (H,) x `xs` (W,) with one
        cell (2,) straight into `out` (B, out, H, W), which may be a view, and return it.

        The grid is rendered a band of whole rows at a time (part of a row when one row has more
        points than a step) and each band's coordinates are built on the fly, so no full-size
        coordinate, value or transposed tensor ever exists: beyond `out`, memory is bounded by the
        step (`queries_per_step`), whatever the output size. Values are `forward`'s on the whole grid
        (up to float rounding where the steps split the queries differently).

        With the "first-layer" blend every term of the blended first layer is separable on a grid
        (bilinear weights, the geometry and phase terms per axis), so a band is blended from the
        feature rows once, then along its columns: no per-query gather of four neighbours.
        """
        batch, height, width = features.shape[0], len(ys), len(xs)
        projected = self.project_features(features)
        separable = self.phase_proj is not None
        step = self.queries_per_step(batch, height * width, chunk_size, ys.device)
        band_rows, band_cols = max(1, step // max(width, 1)), max(1, min(step, width))
        cell = cell.to(ys.dtype).reshape(1, 1, 2)
        if separable:
            bands = SeparableFirstLayer(self, projected, features.shape[-2:], ys, xs, cell.view(2))
        for top in range(0, height, band_rows):
            rows = ys[top : top + band_rows]
            band = bands.rows(top, len(rows)) if separable else None
            for left in range(0, width, band_cols):
                cols = xs[left : left + band_cols]
                if separable:
                    values = self.mlp(bands.columns(band, left, len(cols)))
                else:
                    coord = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(1, -1, 2).expand(batch, -1, -1)
                    values = self.query(projected, features.shape[-2:], coord, cell.expand(batch, coord.shape[1], 2))
                out[:, :, top : top + len(rows), left : left + len(cols)] = values.view(batch, -1, values.shape[-1]).transpose(1, 2).unflatten(2, (len(rows), len(cols)))
        return out

    def render_image(self, features: torch.Tensor, size: tuple[int, int], chunk_size: int | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
        """`render` over a whole (H, W) image's pixel centres, into `out` or a new float32 (B, out, H, W)."""
        if out is None:
            out = torch.empty((features.shape[0], self.mlp[-1].out_features, *size), device=features.device, dtype=torch.float32)
        ys, xs = (pixel_centres(length, features.device) for length in size)
        return self.render(features, ys, xs, cell_size(size, features.device), out, chunk_size)


class SeparableFirstLayer:
    """The "first-layer" blend's pre-activations on a grid ys x xs, a band at a time: `query`'s terms
    regrouped by axis (bilinear weights, the geometry and phase terms are each a sum of a row part
    and a column part). `rows` blends the feature rows of a band of output rows, `columns` a run of
    that band's columns, giving the MLP's input rows (B * rows * cols, hidden) in float32. Each part
    is made for its band or run alone, so memory stays bounded by the step, whatever the grid."""

    def __init__(self, head: ImplicitHead, projected: torch.Tensor, feature_size: tuple[int, int], ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor) -> None:
        self.head, self.size, self.ys, self.xs = head, feature_size, ys, xs
        self.grid = projected.view(projected.shape[0], *feature_size, -1)
        with torch.autocast(ys.device.type, enabled=False):
            geometry, phase = head.geometry_proj.weight.to(ys.dtype), head.phase_proj.weight.to(ys.dtype)
            # phase_features interleaves the axes: phase_proj's even inputs are y's, its odd ones x's
            self.axis_weights = [(geometry[:, 0], phase[:, 0::2]), (geometry[:, 1], phase[:, 1::2])]
            self.cell_term = (cell * cell.new_tensor(feature_size)) @ geometry[:, 2:].t() if head.cell_decode else 0

    def axis_part(self, axis: int, coords: torch.Tensor) -> tuple[tuple[list[torch.Tensor], list[torch.Tensor]], torch.Tensor]:
        """The cells and blend weights of `coords` along `axis`, and their geometry + phase term (N, hidden)."""
        length = self.size[axis]
        scaled = coords * length
        offset_weight, phase_weight = self.axis_weights[axis]
        term = scaled[:, None] * offset_weight + self.head.axis_phase(scaled) @ phase_weight.t()
        return axis_neighbours(coords, length, self.head.local_ensemble), term

    def rows(self, top: int, length: int) -> torch.Tensor:
        """(B, length, w, hidden): the feature rows blended for output rows top.., with the row terms."""
        with torch.autocast(self.grid.device.type, enabled=False):
            neighbours, term = self.axis_part(0, self.ys[top : top + length])
            return blend_along(self.grid, 1, neighbours).add_((term + self.cell_term)[:, None])

    def columns(self, band: torch.Tensor, left: int, length: int) -> torch.Tensor:
        """(B * rows * length, hidden): a `rows` band blended for output columns left.., with the column terms."""
        with torch.autocast(band.device.type, enabled=False):
            neighbours, term = self.axis_part(1, self.xs[left : left + length])
            state = blend_along(band, 2, neighbours).add_(term)
        return state.view(-1, state.shape[-1])


def blend_along(source: torch.Tensor, dim: int, neighbours: tuple[list[torch.Tensor], list[torch.Tensor]]) -> torch.Tensor:
    """Sum over neighbours of source's slices at their indices along `dim` times their weights."""
    shape = [1] * source.dim()
    shape[dim] = -1
    blended = None
    for index, weight in zip(*neighbours):
        term = source.index_select(dim, index) * weight.view(shape)
        blended = term if blended is None else blended.add_(term)
    return blended
