import pytest
from PIL import Image


@pytest.fixture(scope="session")
def eval_photos(tmp_path_factory, real_photos):
    """Three real photo crops of 60x76 (H x W): sides that scale 3.5 does not divide."""
    folder = tmp_path_factory.mktemp("eval_photos")
    for name in ("astronaut", "coffee", "chelsea"):
        photo = real_photos[name]
        top, left = (photo.shape[0] - 60) // 2, (photo.shape[1] - 76) // 2
        Image.fromarray(photo[top : top + 60, left : left + 76]).save(folder / f"{name}.png")
    return folder
