"""TrueRenders: inputs at the latent side x f, targets from the exact render at a random larger side,
one symmetry for both. (What a decoder learns from them is measured by `eval renders` on the bundled
generator, in MODEL_CARD.md.)"""

from __future__ import annotations

import pytest
import torch

from arbiscale.data.crops import load_uint8, uint8_to_float
from arbiscale.data.renders import TrueRenders
from arbiscale.geometry import coord_grid


def test_items_pair_the_input_render_with_pixels_of_a_larger_exact_render(tmp_path, make_render_set):
    root = make_render_set(tmp_path / "set", (8, 16, 32, 64))
    paths = [root / "16" / name for name in ("ring.png", "face.png", "flag.png")]
    data = TrueRenders(paths, root, (4, 4), 4, num_queries=32, max_scale=2, length=60, augment="flip")
    assert data.sides == [16, 32]  # 8 is below the input side, 64 beyond max_scale x 16
    seen_sides = set()
    for index in range(60):
        item = data[index]
        name = paths[index % 3].name
        renders = {side: uint8_to_float(load_uint8(root / str(side) / name)) for side in (16, 32)}
        flipped = not torch.equal(item["image"], renders[16])
        assert torch.equal(item["image"], renders[16].flip(-1) if flipped else renders[16])
        side = round(2 / float(item["cell"][0]))
        seen_sides.add(side)
        target = renders[side].flip(-1) if flipped else renders[side]  # the same symmetry as the input
        grid = coord_grid((side, side))
        pixels = target.reshape(3, -1).t()
        for coord, value in zip(item["coord"], item["target"]):
            position = int(((grid - coord).abs().sum(dim=1)).argmin())
            assert torch.equal(pixels[position], value)
    assert seen_sides == {16, 32}
    assert torch.equal(data[5]["target"], data[5]["target"])  # an item is a pure function of its index


def test_a_missing_side_or_too_few_sides_is_refused(tmp_path, make_render_set):
    root = make_render_set(tmp_path / "set", (16, 32))
    (root / "32" / "ring.png").unlink()
    with pytest.raises(ValueError, match="no render of ring.png at 32"):
        TrueRenders([root / "16" / name for name in ("ring.png", "face.png", "flag.png")], root, (4, 4), 4)
    with pytest.raises(ValueError, match="at least one larger side"):
        TrueRenders([root / "16" / "face.png"], root, (4, 4), 4, max_scale=1.5)
