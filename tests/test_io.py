import numpy as np
import pytest

from medfuse.io.images import ImageFileError, images_by_stem, load_image, save_image


@pytest.mark.parametrize(
    "suffix,dtype,channels",
    [
        (".png", np.uint8, 0),
        (".png", np.uint16, 0),
        (".png", np.uint8, 3),
        (".tif", np.uint16, 3),
        (".tiff", np.uint8, 0),
        (".bmp", np.uint8, 3),
        (".bmp", np.uint8, 0),
    ],
)
def test_lossless_round_trip(tmp_path, suffix, dtype, channels):
    rng = np.random.default_rng(0)
    shape = (13, 17, channels) if channels else (13, 17)
    image = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    path = save_image(tmp_path / f"x{suffix}", image)
    loaded = load_image(path)
    assert loaded.dtype == dtype
    np.testing.assert_array_equal(loaded, image)


def test_jpeg_is_close(tmp_path):
    image = np.full((16, 16), 120, np.uint8)
    np.testing.assert_allclose(load_image(save_image(tmp_path / "x.jpg", image)), image, atol=2)


def test_rgba_drops_alpha(tmp_path):
    from PIL import Image

    rgba = np.random.default_rng(1).integers(0, 256, (5, 5, 4)).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), rgba[..., :3])


def test_unreadable_and_missing(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageFileError, match="bad.png: not a readable image"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(ImageFileError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageFileError, match="is a folder, not an image file"):  # was "no such file"
        load_image(tmp_path)


def test_refusals_leave_no_file(tmp_path):
    sixteen = np.zeros((4, 4), np.uint16)
    for path, image, message in [
        (tmp_path / "x.jpg", sixteen, "16-bit"),
        (tmp_path / "x.png", np.zeros((4, 4, 3), np.uint16), "16-bit colour"),
        (tmp_path / "x.gif", sixteen, "unknown image format"),
        (tmp_path / "x.png", np.zeros((4, 4)), "uint8 or uint16"),
    ]:
        with pytest.raises(ImageFileError, match=message):
            save_image(path, image)
    assert list(tmp_path.iterdir()) == []


def test_images_by_stem(tmp_path):
    save_image(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    save_image(tmp_path / "b.tif", np.zeros((2, 2), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    assert sorted(images_by_stem(tmp_path)) == ["a", "b"]
    save_image(tmp_path / "a.bmp", np.zeros((2, 2), np.uint8))
    with pytest.raises(ImageFileError, match="two images named a"):
        images_by_stem(tmp_path)


def test_an_image_without_pixels_is_the_readers_error(tmp_path):
    """Found by the damaged-file property test: a damaged TIFF decoded to a 0 x 64 array."""
    import tifffile

    tifffile.imwrite(tmp_path / "empty.tif", np.zeros((0, 64), dtype=np.uint16))
    with pytest.raises(ImageFileError, match="holds no pixels"):
        load_image(tmp_path / "empty.tif")
