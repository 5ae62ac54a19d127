import numpy as np
import pytest
import torch
from PIL import Image

from arbiscale.data.eval_sets import LR_FILE_SOURCE, detect_layout, load_hr, make_pair, open_eval_set, pair_sizes
from arbiscale.data.images import image_to_tensor
from arbiscale.errors import UserError
from arbiscale.metrics import imresize, quantize_8bit, synthesize_lr


def save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def as_tensor(pixels):
    return image_to_tensor(Image.fromarray(pixels)).unsqueeze(0)


@pytest.fixture(scope="module")
def crops(real_photos):
    """Two real photo crops with sides that are not multiples of 2, 3 or 4: 50x62 and 43x57."""
    return {"0801": real_photos["astronaut"][100:150, 200:262], "0802": real_photos["coffee"][150:193, 300:357]}


def matlab_lr(pixels, scale):
    """The LR file a MATLAB-made dataset ships: HR cropped to a multiple of the scale, imresize, 8 bits."""
    hr = as_tensor(pixels)
    height, width = hr.shape[-2:]
    hr = hr[..., : height - height % scale, : width - width % scale]
    lr = quantize_8bit(imresize(hr, scale=1 / scale))
    return lr[0].permute(1, 2, 0).add(1).mul(127.5).round().byte().numpy()


@pytest.fixture
def div2k(tmp_path, crops):
    for stem, pixels in crops.items():
        save(tmp_path / "DIV2K_valid_HR" / f"{stem}.png", pixels)
        save(tmp_path / "DIV2K_valid_LR_bicubic" / "X2" / f"{stem}x2.png", matlab_lr(pixels, 2))
    save(tmp_path / "DIV2K_valid_LR_bicubic" / "X3" / "0801x3.png", matlab_lr(crops["0801"], 3))  # X3 only for one image
    return tmp_path


def test_div2k_layout_pairs_given_lr_files_and_synthesises_the_rest(div2k, crops):
    for root in (div2k, div2k / "DIV2K_valid_HR"):
        assert detect_layout(root) == "div2k"
    eval_set = open_eval_set(div2k)
    assert eval_set.layout == "div2k"
    assert [image.name for image in eval_set.images] == ["0801.png", "0802.png"]
    assert sorted(eval_set.images[0].lr_paths) == [2, 3] and sorted(eval_set.images[1].lr_paths) == [2]

    first, second = eval_set.images
    hr = load_hr(first)
    pair = make_pair(first, hr, 2, "pil")
    assert pair.lr_source == LR_FILE_SOURCE
    assert torch.equal(pair.lr, as_tensor(matlab_lr(crops["0801"], 2)))
    assert torch.equal(pair.hr, hr[..., :50, :62])
    pair = make_pair(first, hr, 3.0, "matlab")
    assert pair.lr_source == LR_FILE_SOURCE and pair.lr.shape[-2:] == (16, 20) and pair.hr.shape[-2:] == (48, 60)

    hr = load_hr(second)
    pair = make_pair(second, hr, 3, "matlab")  # no X3 file for 0802: synthesised with the named resize
    assert pair.lr_source == "matlab"
    assert torch.equal(pair.hr, hr[..., :42, :57])
    assert torch.equal(pair.lr, synthesize_lr(hr[..., :42, :57], (14, 19), "matlab"))


def test_benchmark_layout_and_a_root_of_several_sets(tmp_path, crops):
    for name in ("Set5", "Set14"):
        save(tmp_path / name / "HR" / "baby.png", crops["0801"])
        save(tmp_path / name / "LR_bicubic" / "X2" / "babyx2.png", matlab_lr(crops["0801"], 2))
    eval_set = open_eval_set(tmp_path / "Set5")
    assert eval_set.layout == "benchmark" and [image.name for image in eval_set.images] == ["baby.png"]
    pair = make_pair(eval_set.images[0], load_hr(eval_set.images[0]), 2, "matlab")
    assert pair.lr_source == LR_FILE_SOURCE and pair.hr.shape[-2:] == (50, 62) and pair.lr.shape[-2:] == (25, 31)
    with pytest.raises(UserError, match="Set14, Set5"):
        open_eval_set(tmp_path)


def test_folder_and_split_layouts(tmp_path, crops):
    save(tmp_path / "a" / "x.png", crops["0801"])
    save(tmp_path / "b.png", crops["0802"])
    eval_set = open_eval_set(tmp_path)
    assert eval_set.layout == "folder" and [image.name for image in eval_set.images] == ["a/x.png", "b.png"]
    assert [image.name for image in open_eval_set(tmp_path, max_images=1).images] == ["a/x.png"]
    split = tmp_path / "val.txt"
    split.write_text("# validation\nb.png\n\n")
    eval_set = open_eval_set(tmp_path, split_file=split)
    assert eval_set.layout == "split" and [image.name for image in eval_set.images] == ["b.png"]
    with pytest.raises(UserError, match="`split_file`"):
        open_eval_set(tmp_path, layout="split")
    with pytest.raises(UserError, match="`split_file`"):
        open_eval_set(tmp_path, layout="div2k", split_file=split)
    with pytest.raises(UserError, match="layout"):
        open_eval_set(tmp_path, layout="celeba")


@pytest.mark.parametrize(("size", "scale", "hr", "lr"), [((50, 62), 4, (48, 60), (12, 15)), ((50, 62), 3.5, (49, 60), (14, 17)), ((43, 57), 12, (36, 48), (3, 4))])
def test_modcrop_sizes(size, scale, hr, lr):
    assert pair_sizes(size, scale) == (hr, lr)


def test_mismatched_lr_file_and_too_small_images_are_user_errors(tmp_path, crops):
    save(tmp_path / "HR" / "baby.png", crops["0802"])
    save(tmp_path / "LR_bicubic" / "X2" / "babyx2.png", np.zeros((30, 30, 3), np.uint8))
    image = open_eval_set(tmp_path).images[0]
    with pytest.raises(UserError, match="do not belong together"):
        make_pair(image, load_hr(image), 2, "matlab")
    with pytest.raises(UserError, match="too small"):
        make_pair(image, load_hr(image), 60, "matlab")
