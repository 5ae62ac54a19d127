import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbiscale.errors import UserError
from arbiscale.sampling import check_latent_size, check_output_size, output_size, working_latent_size


@pytest.mark.parametrize(
    ("size", "scale", "expected"), [((10, 14), 2.37, (24, 33)), ((37, 23), 3.7, (137, 85)), ((16, 16), 4, (64, 64)), ((9, 31), 0.5, (4, 16)), ((3, 5), (2.0, 3.0), (6, 15))]
)
def test_output_is_exactly_round_of_input_times_scale(size, scale, expected):
    assert output_size(size, scale=scale) == expected


def test_explicit_size_is_kept_even_with_another_aspect_ratio():
    assert output_size((10, 14), size=(50, 200)) == (50, 200)


@pytest.mark.parametrize("kwargs", [{}, {"scale": 2.0, "size": (4, 4)}])
def test_exactly_one_of_scale_or_size(kwargs):
    with pytest.raises(UserError, match="either a scale or an output size"):
        output_size((10, 10), **kwargs)


@pytest.mark.parametrize("scale", [0, -1.5, float("nan"), float("inf")])
def test_bad_scales_are_user_errors(scale):
    with pytest.raises(UserError, match="scale"):
        output_size((10, 10), scale=scale)


@pytest.mark.parametrize("size", [(0, 10), (10,), (2.5, 3), (True, 4)])
def test_bad_sizes_are_user_errors(size):
    with pytest.raises(UserError, match="output size"):
        check_output_size(size)


def test_working_latent_follows_the_output_and_rounds_to_the_unet_multiple():
    # 24 x 33 output, f = 2 -> 12 x 16.5 latent cells -> multiples of 4: 12 x 16
    assert working_latent_size((24, 33), downsample_factor=2, size_multiple=4, max_latent_side=64) == (12, 16)
    # a tiny output still gets the smallest latent the UNet can run
    assert working_latent_size((3, 5), downsample_factor=4, size_multiple=8, max_latent_side=64) == (8, 8)


def test_working_latent_is_capped_keeping_the_aspect_ratio():
    # 3000 x 1000 at f = 4 would be 750 x 250 cells; capped to 64 on the long side, the short side follows
    assert working_latent_size((3000, 1000), downsample_factor=4, size_multiple=4, max_latent_side=64) == (64, 20)
    # a cap that is not a multiple rounds down to one
    assert working_latent_size((3000, 3000), downsample_factor=4, size_multiple=8, max_latent_side=60) == (56, 56)


def test_the_cap_gives_way_to_the_input_resolution():
    # a 1024 x 768 photo at 2x (f = 4, cap 128): capped, the working image would be 512 x 384, half the input;
    # with the input's size the latent keeps the input's resolution (256 x 192 cells = 1024 x 768 pixels)
    assert working_latent_size((2048, 1536), 4, 4, 128) == (128, 96)
    assert working_latent_size((2048, 1536), 4, 4, 128, input_size=(1024, 768)) == (256, 192)
    # rounded up to the UNet multiple; untouched where the cap is not reached
    assert working_latent_size((2000, 1000), 4, 8, 64, input_size=(1001, 500)) == (256, 128)
    assert working_latent_size((1100, 1100), 4, 4, 64, input_size=(1100, 1100)) == (276, 276)
    assert working_latent_size((400, 300), 4, 4, 128, input_size=(100, 75)) == working_latent_size((400, 300), 4, 4, 128)
    assert working_latent_size((20, 20), 1, 8, 8, input_size=(20, 20)) == (24, 24)  # up, not to the nearest multiple (16)


@given(
    height=st.integers(1, 3000),
    width=st.integers(1, 3000),
    scale=st.floats(1, 8),
    factor=st.sampled_from([1, 2, 4, 8]),
    multiple=st.sampled_from([1, 2, 4, 8]),
    cap=st.integers(8, 256),
)
def test_the_working_image_is_never_below_the_input(height, width, scale, factor, multiple, cap):
    out_size = (max(1, round(height * scale)), max(1, round(width * scale)))
    latent_h, latent_w = working_latent_size(out_size, factor, multiple, cap, input_size=(height, width))
    assert latent_h % multiple == 0 and latent_w % multiple == 0
    assert latent_h * factor >= min(height, out_size[0]) and latent_w * factor >= min(width, out_size[1])
    assert latent_h <= max(multiple, math.ceil(out_size[0] / factor / multiple) * multiple, cap)


def test_cap_below_the_unet_multiple_is_refused():
    with pytest.raises(UserError, match="at least 8"):
        working_latent_size((100, 100), 4, 8, 4)


@given(height=st.integers(1, 5000), width=st.integers(1, 5000), factor=st.sampled_from([1, 2, 4, 8]), multiple=st.sampled_from([1, 2, 4, 8]), cap=st.integers(8, 256))
def test_working_latent_invariants(height, width, factor, multiple, cap):
    latent_h, latent_w = working_latent_size((height, width), factor, multiple, cap)
    assert latent_h % multiple == 0 and latent_w % multiple == 0
    assert multiple <= latent_h <= cap and multiple <= latent_w <= cap
    ideal_h, ideal_w = height / factor, width / factor
    if max(ideal_h, ideal_w) <= cap:
        # uncapped: each side within half a multiple of the ideal (or at the minimum / the cap's floor)
        for side, ideal in ((latent_h, ideal_h), (latent_w, ideal_w)):
            assert abs(side - ideal) <= multiple / 2 + 1e-9 or side == multiple or side == cap // multiple * multiple
    else:
        # capped: the longer side uses the cap (to its multiple) and the aspect ratio is kept up to rounding
        shrink = cap / max(ideal_h, ideal_w)
        assert max(latent_h, latent_w) > cap - multiple
        for side, ideal in ((latent_h, ideal_h * shrink), (latent_w, ideal_w * shrink)):
            assert abs(side - ideal) <= multiple or side == multiple


def test_user_latent_size_must_fit_the_unet():
    assert check_latent_size((8, 16), 8) == (8, 16)
    with pytest.raises(UserError, match="multiples of 8"):
        check_latent_size((8, 12), 8)
