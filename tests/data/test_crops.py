from __future__ import annotations

import pytest
import torch
from PIL import Image

from arbiscale.data.crops import ArbitraryScaleCrops, item_generator, random_crop, random_symmetry, sample_queries
from arbiscale.data.images import list_images, resize
from arbiscale.geometry import coord_grid


def target_size_of(cell: torch.Tensor) -> tuple[int, int]:
    return round(2 / cell[0].item()), round(2 / cell[1].item())


def test_items_of_non_square_crops(photo_dir):
    dataset = ArbitraryScaleCrops(list_images(photo_dir), latent_size=(6, 10), downsample_factor=4, num_queries=50, length=40, seed=3)
    assert len(dataset) == 40
    seen_heights = set()
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["image"].shape == (3, 24, 40)
        assert item["coord"].shape == (50, 2) and item["cell"].shape == (2,) and item["target"].shape == (50, 3)
        assert item["image"].min() >= -1 and item["image"].max() <= 1
        assert item["coord"].abs().max() < 1
        height, width = target_size_of(item["cell"])
        assert 6 <= height <= 24 and 10 <= width <= 40
        assert abs(width / 10 - height / 6) < 0.2  # one scale for both axes (up to rounding)
        seen_heights.add(height)
    assert len(seen_heights) >= 8  # scales spread over [1, f]


def test_targets_are_the_resized_crop_at_the_query_coordinates(photo_dir):
    dataset = ArbitraryScaleCrops(list_images(photo_dir), latent_size=(8, 8), downsample_factor=2, length=8, seed=1)
    for index in range(8):
        item = dataset[index]
        size = target_size_of(item["cell"])
        grid = coord_grid(size)
        full = resize(item["image"], size).reshape(3, -1).t()
        rows = [torch.nonzero((grid == c).all(dim=1)).item() for c in item["coord"]]
        assert len(set(rows)) == len(rows)  # drawn without replacement
        assert torch.allclose(full[rows], item["target"], atol=1e-6)


def test_deterministic_items_repeat_and_training_items_vary_by_epoch(photo_dir):
    paths = list_images(photo_dir)
    fixed = ArbitraryScaleCrops(paths, (8, 8), 2, length=6, deterministic=True)
    first = [fixed[i] for i in range(6)]
    fixed.set_epoch(5)
    for index, item in enumerate(first):
        again = fixed[index]
        assert all(torch.equal(item[key], again[key]) for key in item)
    assert not torch.equal(first[0]["image"], first[4]["image"])  # index 4 reuses photo 0 at another crop

    training = ArbitraryScaleCrops(paths, (8, 8), 2, length=6, seed=0)
    epoch0 = training[2]
    assert torch.equal(epoch0["target"], training[2]["target"])
    training.set_epoch(1)
    assert not torch.equal(epoch0["image"], training[2]["image"]) or not torch.equal(epoch0["coord"], training[2]["coord"])


def test_small_images_are_upscaled_to_cover_the_crop(tmp_path, real_photos):
    Image.fromarray(real_photos["rocket"][:20, :30]).save(tmp_path / "small.png")
    dataset = ArbitraryScaleCrops([tmp_path / "small.png"], (16, 8), 4, length=2)
    assert dataset.images[0].shape == (3, 64, 96)  # 20x30 scaled by 3.2 to cover 64x32
    assert dataset[0]["image"].shape == (3, 64, 32)


def test_more_queries_than_target_pixels_are_drawn_with_replacement():
    target = torch.rand(3, 4, 5)
    coord, cell, values = sample_queries(target, 100, item_generator(0))
    assert coord.shape == (100, 2) and values.shape == (100, 3)
    assert torch.allclose(cell, torch.tensor([0.5, 0.4]))


def test_dihedral_keeps_shape_and_covers_the_group():
    square = torch.arange(9.0).reshape(1, 3, 3)
    results = {tuple(random_symmetry(square, item_generator(0, i)).flatten().tolist()) for i in range(200)}
    assert len(results) == 8
    wide = torch.arange(6.0).reshape(1, 2, 3)
    shapes = {random_symmetry(wide, item_generator(1, i)).shape for i in range(50)}
    assert shapes == {(1, 2, 3)}


def test_flip_augmentation_only_mirrors_left_right():
    square = torch.arange(9.0).reshape(1, 3, 3)
    results = {tuple(random_symmetry(square, item_generator(0, i), "flip").flatten().tolist()) for i in range(50)}
    assert results == {tuple(square.flatten().tolist()), tuple(square.flip(-1).flatten().tolist())}
    assert torch.equal(random_symmetry(square, item_generator(0), "none"), square)


def test_random_crop_stays_inside():
    image = torch.arange(50.0).reshape(1, 5, 10)
    for i in range(20):
        crop = random_crop(image, (2, 3), item_generator(i))
        assert crop.shape == (1, 2, 3)
        top, left = divmod(int(crop[0, 0, 0]), 10)
        assert torch.equal(crop, image[:, top : top + 2, left : left + 3])
    with pytest.raises(ValueError, match="does not fit"):
        random_crop(image, (6, 3), item_generator(0))


def test_max_scale_beyond_the_downsample_factor_is_refused(photo_dir):
    with pytest.raises(ValueError, match="max_scale"):
        ArbitraryScaleCrops(list_images(photo_dir), (8, 8), 2, max_scale=3.0)
