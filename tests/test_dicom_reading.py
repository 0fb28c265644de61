"""Reading compressed DICOM series (JPEG 2000, JPEG-LS, RLE, baseline JPEG) and enhanced
multi-frame images (issue 23): the same volume and geometry as the uncompressed, single-frame
series, or one line saying what is missing."""

import io
import struct
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, JPEG2000Lossless, JPEGBaseline8Bit, JPEGLosslessSV1, JPEGLSLossless, RLELossless
from volume_data import ct_hu, write_dicom_series

from medfuse.io.volumes import DICOM_SCALE, VolumeFileError, read_volume, write_volume

ORIENTATION = (0.96, 0.28, 0.0, -0.28, 0.96, 0.0)


def series(tmp_path, name="ct", modality="CT"):
    """A small oblique series; 48 x 40 pixels, as JPEG 2000's default 6 resolutions need 32 or more."""
    return write_dicom_series(
        tmp_path / name,
        ct_hu((48, 40, 5)),
        spacing=(0.8, 0.9),
        thickness=2.5,
        orientation=ORIENTATION,
        modality=modality,
    )


def rewrite(folder, change):
    for path in sorted(folder.iterdir()):
        dataset = pydicom.dcmread(path)
        change(dataset)
        dataset.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize(
    "syntax, plugin",
    [(JPEG2000Lossless, "openjpeg"), (JPEGLSLossless, "jpeg_ls"), (RLELossless, None)],
    ids=["jpeg2000", "jpeg-ls", "rle"],
)
def test_a_losslessly_compressed_series_reads_as_the_uncompressed_one(tmp_path, syntax, plugin):
    if plugin:
        pytest.importorskip(plugin, reason=f"{plugin} (a pinned pydicom plug-in) is not installed")
    plain = read_volume(series(tmp_path))
    compressed = series(tmp_path, "compressed")
    rewrite(compressed, lambda dataset: dataset.compress(syntax))
    assert pydicom.dcmread(next(compressed.iterdir())).file_meta.TransferSyntaxUID == syntax
    back = read_volume(compressed)
    np.testing.assert_array_equal(back.volume.data, plain.volume.data)
    np.testing.assert_allclose(back.volume.geometry.affine, plain.volume.geometry.affine, atol=1e-9)


def jpeg_lossless(pixels: np.ndarray) -> bytes:
    """``pixels`` (rows, columns) uint16 as a lossless JPEG, Process 14, Selection Value 1 (ITU-T T.81
    Annex H): 16-bit precision, each sample predicted by the one on its left (the first of a row by
    the one above, the very first by 2 ** 15), the differences modulo 2 ** 16 coded by their
    category SSSS with one Huffman table that gives the 17 categories a 5-bit code each (code SSSS)
    and then the SSSS low bits of the difference (of the difference - 1 if negative)."""
    rows, columns = pixels.shape
    samples = pixels.astype(np.int64)
    predicted = np.empty_like(samples)
    predicted[0, 0] = 1 << 15
    predicted[0, 1:] = samples[0, :-1]
    predicted[1:, 0] = samples[:-1, 0]
    predicted[1:, 1:] = samples[1:, :-1]
    bits = []
    for difference in ((samples - predicted + (1 << 15)) % (1 << 16) - (1 << 15)).ravel().tolist():
        category = 16 if difference == -(1 << 15) else abs(difference).bit_length()
        bits.append(format(category, "05b"))
        if 0 < category < 16:
            bits.append(format(difference if difference > 0 else difference - 1 + (1 << category), f"0{category}b"))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    coded = bytes(int(stream[n : n + 8], 2) for n in range(0, len(stream), 8)).replace(b"\xff", b"\xff\x00")
    frame = b"\xff\xc3" + struct.pack(">HBHHBBBB", 11, 16, rows, columns, 1, 1, 0x11, 0)
    table = b"\xff\xc4" + struct.pack(">HB", 2 + 1 + 16 + 17, 0) + bytes([0, 0, 0, 0, 17] + [0] * 11 + list(range(17)))
    scan = b"\xff\xda" + struct.pack(">HBBBBBB", 8, 1, 1, 0, 1, 0, 0)
    return b"\xff\xd8" + frame + table + scan + coded + b"\xff\xd9"


def test_a_jpeg_lossless_series_reads_as_the_uncompressed_one(tmp_path):
    """JPEG Lossless, Process 14 SV1: the compression of most CT and MR archives (pylibjpeg-libjpeg decodes it)."""
    plain = read_volume(series(tmp_path))
    compressed = series(tmp_path, "jpeg_lossless")

    def to_jpeg_lossless(dataset):
        dataset.PixelData = encapsulate([jpeg_lossless(dataset.pixel_array)])
        dataset["PixelData"].VR = "OB"
        dataset["PixelData"].is_undefined_length = True
        dataset.file_meta.TransferSyntaxUID = JPEGLosslessSV1

    rewrite(compressed, to_jpeg_lossless)
    np.testing.assert_array_equal(read_volume(compressed).volume.data, plain.volume.data)


def test_a_baseline_jpeg_series_decodes_close_to_its_pixels(tmp_path):
    plain = read_volume(series(tmp_path))
    compressed = series(tmp_path, "jpeg")

    def to_jpeg(dataset):
        grey = (dataset.pixel_array // 4).astype(np.uint8)  # 0 .. 253: 8 bits
        encoded = io.BytesIO()
        Image.fromarray(grey).save(encoded, format="JPEG", quality=95)
        dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 8, 8, 7
        dataset.RescaleSlope = dataset.RescaleSlope * 4
        dataset.PixelData = encapsulate([encoded.getvalue()])
        dataset["PixelData"].VR = "OB"
        dataset["PixelData"].is_undefined_length = True
        dataset.LossyImageCompression = "01"
        dataset.file_meta.TransferSyntaxUID = JPEGBaseline8Bit

    rewrite(compressed, to_jpeg)
    back = read_volume(compressed)
    error = np.abs(back.volume.data - plain.volume.data)
    assert np.median(error) <= 8 and error.mean() < 20  # HU: 2 x 4 per stored step, plus the JPEG's loss


def test_pixel_data_no_plug_in_decodes_is_one_line_naming_the_syntax(tmp_path):
    folder = series(tmp_path)

    def to_mpeg(dataset):
        dataset.PixelData = encapsulate([b"\x00" * 64])
        dataset["PixelData"].is_undefined_length = True
        dataset.file_meta.TransferSyntaxUID = MPEG2MPML

    rewrite(folder, to_mpeg)
    with pytest.raises(VolumeFileError, match="cannot decode its pixel data \\(MPEG2 Main Profile") as caught:
        read_volume(folder)
    assert "\n" not in str(caught.value)


def test_a_missing_decoder_plug_in_is_one_line_naming_it(tmp_path):
    """pyjpegls and pylibjpeg hidden from a fresh interpreter, as if they were not installed."""
    folder = series(tmp_path)
    rewrite(folder, lambda dataset: dataset.compress(JPEGLSLossless))
    probe = (
        "import sys\nsys.modules['jpeg_ls'] = sys.modules['pylibjpeg'] = None\n"
        "from medfuse.io.volumes import read_volume\n"
        f"try:\n    read_volume({str(folder)!r})\nexcept Exception as error:\n    print(error)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    message = result.stdout.strip()
    assert "\n" not in message and "cannot decode its pixel data (JPEG-LS Lossless Image Compression:" in message
    assert "requires pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1" in message and "pyjpegls" in message


def enhanced(tmp_path, folder, modality):
    """``folder``'s series as one legacy converted enhanced multi-frame file (highdicom), frames in file order."""
    hd = pytest.importorskip("highdicom")
    convert = hd.legacy.LegacyConvertedEnhancedCTImage if modality == "CT" else hd.legacy.LegacyConvertedEnhancedMRImage
    image = convert([pydicom.dcmread(path) for path in sorted(folder.iterdir())], hd.UID(), 5, hd.UID(), 1)
    (tmp_path / "enhanced").mkdir()
    image.save_as(tmp_path / "enhanced" / "image.dcm")
    return tmp_path / "enhanced" / "image.dcm"


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_an_enhanced_multi_frame_image_reads_as_its_single_frame_series(tmp_path, modality):
    folder = series(tmp_path, modality=modality)
    plain = read_volume(folder)
    path = enhanced(tmp_path, folder, modality)
    for target in (path, path.parent):
        back = read_volume(target)
        np.testing.assert_array_equal(back.volume.data, plain.volume.data)
        np.testing.assert_allclose(back.volume.geometry.affine, plain.volume.geometry.affine, atol=1e-9)
        assert back.modality == modality and len(back.header) == back.volume.shape[2]
    groups = pydicom.dcmread(path).PerFrameFunctionalGroupsSequence
    assert sorted(back.frames) == list(range(1, len(groups) + 1))
    for slice_dataset, frame in zip(plain.header, back.frames):
        position = groups[frame - 1].PlanePositionSequence[0].ImagePositionPatient
        assert list(position) == list(slice_dataset.ImagePositionPatient)


def test_multi_frame_images_without_their_geometry_are_refused_in_one_line(tmp_path):
    path = enhanced(tmp_path, series(tmp_path), "CT")
    one_slice = path.parent / "slice.dcm"
    one_slice.write_bytes(next((tmp_path / "ct").iterdir()).read_bytes())
    with pytest.raises(VolumeFileError, match="a multi-frame DICOM image and other images"):
        read_volume(path.parent)
    one_slice.unlink()
    dataset = pydicom.dcmread(path)
    del dataset.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence
    dataset.save_as(path)
    with pytest.raises(VolumeFileError, match="frame 3 has no PlanePositionSequence"):
        read_volume(path)
    del dataset.PerFrameFunctionalGroupsSequence
    dataset.save_as(path)
    with pytest.raises(VolumeFileError, match="without a PerFrameFunctionalGroupsSequence item per frame") as caught:
        read_volume(path)
    assert "\n" not in str(caught.value)


def test_the_real_world_value_mapping_is_read_only_where_the_rescale_is_an_unspecified_identity(tmp_path):
    reference = read_volume(series(tmp_path))
    fused = np.linspace(0, 1, reference.volume.data.size, dtype=np.float32).reshape(reference.volume.shape)
    out = write_volume(tmp_path / "fused", fused, reference, "medfuse fusion (rule max)")
    np.testing.assert_allclose(read_volume(out).volume.data, fused, atol=0.5 / DICOM_SCALE + 1e-7)
    rewrite(out, lambda dataset: setattr(dataset, "RescaleType", "OD"))
    np.testing.assert_array_equal(read_volume(out).volume.data, np.round(fused * DICOM_SCALE))
    rewrite(out, lambda dataset: setattr(dataset, "RescaleType", "US"))
    np.testing.assert_allclose(read_volume(out).volume.data, fused, atol=0.5 / DICOM_SCALE + 1e-7)
    rewrite(out, lambda dataset: setattr(dataset.RealWorldValueMappingSequence[0], "LUTLabel", "scanner"))
    np.testing.assert_array_equal(read_volume(out).volume.data, np.round(fused * DICOM_SCALE))  # not medfuse's
    rewrite(out, lambda dataset: setattr(dataset.RealWorldValueMappingSequence[0], "LUTLabel", "medfuse"))
    rewrite(out, lambda dataset: setattr(dataset.RealWorldValueMappingSequence[0], "RealWorldValueLastValueMapped", 9))
    np.testing.assert_array_equal(read_volume(out).volume.data, np.round(fused * DICOM_SCALE))
