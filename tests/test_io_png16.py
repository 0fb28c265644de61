import struct
import zlib

import numpy as np
import pytest

from medfuse.io.images import ImageFileError, load_image


def png_bytes(array: np.ndarray, colour_type: int) -> bytes:
    """A minimal 16-bit PNG (no filtering) of an (H, W, planes) uint16 array, written by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = array.shape[:2]
    big_endian = array.astype(">u2")
    raw = b"".join(b"\x00" + big_endian[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("planes, colour_type", [(3, 2), (4, 6)])
def test_sixteen_bit_colour_png_keeps_sixteen_bits(tmp_path, planes, colour_type):
    array = (np.arange(6 * 5 * planes).reshape(6, 5, planes) * 997 + 3).astype(np.uint16)
    path = tmp_path / "rgb16.png"
    path.write_bytes(png_bytes(array, colour_type))
    image = load_image(path)
    assert image.dtype == np.uint16 and image.shape == (6, 5, 3)
    np.testing.assert_array_equal(image, array[..., :3])


def test_truncated_sixteen_bit_colour_png_is_refused(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(png_bytes(np.ones((4, 4, 3), np.uint16), 2)[:60])
    with pytest.raises(ImageFileError, match="not a readable image"):
        load_image(path)
