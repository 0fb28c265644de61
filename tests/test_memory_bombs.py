"""Small files that declare huge images are refused before a pixel is decoded, by one limit for
every reader (PNG through Pillow and pypng, TIFF, NIfTI, DICOM), and the memory plan sees the
address-space limit that batch schedulers set (``ulimit -v``)."""

import struct
import subprocess
import sys
import zlib

import nibabel as nib
import numpy as np
import png
import pydicom
import pytest
import tifffile
from PIL import Image
from volume_data import ct_hu, write_dicom_series

from medfuse.cli import main
from medfuse.fusion import memory
from medfuse.io.images import ImageFileError, load_image
from medfuse.io.volumes import VolumeFileError, read_volume

HUGE = 60000


@pytest.fixture(autouse=True)
def one_gigabyte_free(monkeypatch):
    monkeypatch.setattr(memory, "free_memory", lambda device: 2**30)


def png_declaring(path, width, height):
    """The PNG at ``path`` with its header (IHDR) rewritten to declare another size."""
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_a_png_declaring_a_huge_image_is_refused_before_decoding(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "grey.png")
    png.from_array(np.zeros((8, 24), np.uint16), "RGB", info={"bitdepth": 16}).save(tmp_path / "colour16.png")
    for name in ("grey.png", "colour16.png"):
        bomb = png_declaring(tmp_path / name, HUGE, HUGE)
        with pytest.raises(ImageFileError, match=f"{HUGE}|decompression bomb"):
            load_image(bomb)


def test_a_tiff_declaring_a_huge_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8))
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tiff:
        tags = tiff.pages[0].tags
        offsets = [(tags[name].valueoffset, tags[name].dtype) for name in ("ImageWidth", "ImageLength")]
    for offset, kind in offsets:
        data[offset : offset + (2 if kind == 3 else 4)] = struct.pack("<H" if kind == 3 else "<I", HUGE)
    path.write_bytes(bytes(data))
    with pytest.raises(ImageFileError, match=f"declares {HUGE} x {HUGE} values"):
        load_image(path)


def test_a_nifti_declaring_a_huge_volume_is_refused_before_reading(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((4000, 4000, 4000))
    header.set_data_dtype(np.float32)
    path = tmp_path / "bomb.nii"
    path.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 64)
    with pytest.raises(VolumeFileError, match="declares 4000 x 4000 x 4000 values"):
        read_volume(path)


def test_a_dicom_series_declaring_huge_slices_is_refused_before_decoding(tmp_path, capsys):
    series = write_dicom_series(tmp_path / "ct", ct_hu())
    for file in sorted(series.iterdir()):
        dataset = pydicom.dcmread(file)
        dataset.Rows = dataset.Columns = 30000
        dataset.save_as(file)
    with pytest.raises(VolumeFileError, match="declares 30000 x 30000"):
        read_volume(series)
    assert main(["register", str(series), str(series), "-o", str(tmp_path / "o.nii")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "declares 30000 x 30000" in err


def test_the_memory_plan_respects_an_address_space_limit():
    probe = (
        "import resource\nfrom pathlib import Path\nfrom medfuse.fusion.memory import _free_cpu_memory\n"
        "size = next(int(l.split()[1]) * 1024 for l in Path('/proc/self/status').read_text().splitlines() "
        "if l.startswith('VmSize:'))\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + 300 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1]))\n"
        "print(_free_cpu_memory())"
    )
    free = int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
    assert 0 < free <= 300 * 2**20
