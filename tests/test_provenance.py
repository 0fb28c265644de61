"""Provenance in 2-D outputs: PNG text chunks and the TIFF description say how a fusion was made (issue 22)."""

import json

import numpy as np
import tifffile
from PIL import Image

from medfuse import __version__
from medfuse.cli import main
from medfuse.dran.models import weights_digest
from medfuse.io.images import load_image, save_image


def test_png_and_tiff_carry_the_rule_the_weights_and_the_sources(tmp_path, samples, tiny_weights):
    mri, ct = samples / "CT-MRI" / "MRI" / "41010.png", samples / "CT-MRI" / "CT" / "41010.png"
    for name in ("f.png", "f.tif"):
        assert (
            main(
                [
                    "fuse",
                    str(mri),
                    str(ct),
                    "-o",
                    str(tmp_path / name),
                    "--weights",
                    str(tiny_weights),
                    "--rule",
                    "sfnn-map",
                ]
            )
            == 0
        )
    text = Image.open(tmp_path / "f.png").text
    assert text["Software"] == f"medfuse {__version__}" and text["Fusion rule"] == "sfnn-map"
    assert text["Source"] == "A MRI/41010.png; B CT/41010.png" and weights_digest(tiny_weights) in text["Weights"]
    assert json.loads(tifffile.TiffFile(tmp_path / "f.tif").pages[0].description) == text
    np.testing.assert_array_equal(load_image(tmp_path / "f.png"), load_image(tmp_path / "f.tif"))


def test_folder_mode_records_each_pairs_sources(tmp_path, samples, tiny_weights):
    assert (
        main(
            [
                "fuse",
                str(samples / "PET-MRI" / "MRI"),
                str(samples / "PET-MRI" / "PET"),
                "-o",
                str(tmp_path / "out"),
                "--weights",
                str(tiny_weights),
            ]
        )
        == 0
    )
    written = sorted((tmp_path / "out").iterdir())
    assert [Image.open(path).text["Source"] for path in written] == [
        "A MRI/25015.png; B PET/25015.png",
        "A MRI/25022.png; B PET/25022.png",
    ]


def test_a_sixteen_bit_png_keeps_its_text(tmp_path):
    image = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    save_image(tmp_path / "x.png", image, {"Comment": "made here"})
    assert Image.open(tmp_path / "x.png").text == {"Comment": "made here"}
    np.testing.assert_array_equal(load_image(tmp_path / "x.png"), image)
