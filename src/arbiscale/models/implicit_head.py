"""LIIF-style implicit head: renders a feature map at arbitrary continuous coordinates.

The first MLP layer acts on [feature, relative offset, cell]; it is split into a feature
projection, computed once per latent cell, and a small geometry projection per query, which
is the same function as LIIF's single linear layer over the concatenation, at a fraction of
the cost when many queries share a cell.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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


def neighbour_weights(coord: torch.Tensor, feature_size: tuple[int, int], local_ensemble: bool = True) -> torch.Tensor:
    """(..., K) blend weights of the K neighbouring cells of each (y, x) coordinate."""
    _, weights_y = axis_neighbours(coord[..., 0], feature_size[0], local_ensemble)
    _, weights_x = axis_neighbours(coord[..., 1], feature_size[1], local_ensemble)
    return torch.stack([wy * wx for wy in weights_y for wx in weights_x], dim=-1)


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
    ) -> None:
        super().__init__()
        self.local_ensemble = local_ensemble
        self.feature_unfold = feature_unfold
        self.cell_decode = cell_decode
        feature_dim = in_channels * (9 if feature_unfold else 1)
        self.feature_proj = nn.Conv2d(feature_dim, hidden_channels[0], kernel_size=1)
        self.geometry_proj = nn.Linear(4 if cell_decode else 2, hidden_channels[0], bias=False)
        layers: list[nn.Module] = []
        widths = list(hidden_channels) + [out_channels]
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [nn.ReLU(), nn.Linear(width_in, width_out)]
        self.mlp = nn.Sequential(*layers)

    def project_features(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, h*w, hidden): the feature part of the first layer, once per cell."""
        if self.feature_unfold:
            height, width = features.shape[-2:]
            features = F.unfold(features, 3, padding=1).view(features.shape[0], -1, height, width)
        return self.feature_proj(features).flatten(2).transpose(1, 2)

    def query(self, projected: torch.Tensor, feature_size: tuple[int, int], coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Predict (B, Q, out) at coordinates (B, Q, 2) with cells (B, Q, 2) from projected features."""
        height, width = feature_size
        grid_scale = coord.new_tensor([height, width])
        rows, row_weights = axis_neighbours(coord[..., 0], height, self.local_ensemble)
        cols, col_weights = axis_neighbours(coord[..., 1], width, self.local_ensemble)
        hidden = projected.shape[-1]
        output = 0
        for row, row_weight in zip(rows, row_weights):
            for col, col_weight in zip(cols, col_weights):
                flat = (row * width + col).unsqueeze(-1).expand(-1, -1, hidden)
                centre = torch.stack([(2 * row + 1) / height - 1, (2 * col + 1) / width - 1], dim=-1)
                geometry = (coord - centre) * grid_scale
                if self.cell_decode:
                    geometry = torch.cat([geometry, cell * grid_scale], dim=-1)
                first = torch.gather(projected, 1, flat) + self.geometry_proj(geometry.to(projected.dtype))
                output = output + self.mlp(first) * (row_weight * col_weight).unsqueeze(-1).to(first.dtype)
        return output

    def forward(self, features: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """Render features (B, C, h, w) at coord (B, Q, 2); queries run in chunks of `chunk_size`."""
        batch, num_queries = coord.shape[:2]
        if cell.dim() < 3:
            cell = cell.reshape(-1, 1, 2)
        cell = cell.to(coord.dtype).expand(batch, num_queries, 2)
        projected = self.project_features(features)
        size = features.shape[-2:]
        if chunk_size is None or chunk_size >= num_queries:
            return self.query(projected, size, coord, cell)
        pieces = [
            self.query(projected, size, coord[:, start : start + chunk_size], cell[:, start : start + chunk_size])
            for start in range(0, num_queries, chunk_size)
        ]
        return torch.cat(pieces, dim=1)
