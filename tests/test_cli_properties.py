"""The command line's promise on generated files (Hypothesis), issue 32: for any inputs, exit 0
with a right output, or exit 1 or 2 with one line per failure, never a traceback, never a file
outside the output.

Generated: 2-D images (PNG grey or colour, 8 or 16 bit; TIFF of 1 to 4 pages of five pixel
types with values up to their type's limits; bytes that are no image), NIfTI volumes (three
pixel types, sides of 1 to 9, values near float32's limit, NaN), file names of any bytes
(UTF-8 or not), and batch manifests whose rows have too few or too many fields.
"""

import os
import string
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from medfuse.cli import main
from medfuse.io.images import load_image

CASES = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
RULES = st.sampled_from(["average", "pyramid-energy", "sfnn-map"])


@st.composite
def file_names(draw, suffix: str) -> str:
    """A file name of any bytes but ``/`` and NUL (decoded as Python decodes file names), with ``suffix``."""
    stem = draw(
        st.binary(min_size=1, max_size=12).filter(
            lambda raw: b"/" not in raw and b"\0" not in raw and raw not in (b".", b"..")
        )
    )
    return os.fsdecode(stem) + suffix


@st.composite
def images(draw, shape: tuple[int, int]) -> tuple[str, object]:
    """(suffix, writer): a writer that puts a generated 2-D image file at a path."""
    kind = draw(st.sampled_from(["png-grey", "png-grey", "png-colour", "png-16", "tiff", "tiff", "not-an-image"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "not-an-image":
        junk = draw(st.binary(max_size=64))
        return ".png", lambda path: Path(path).write_bytes(junk)
    if kind.startswith("png"):
        dtype = np.uint16 if kind == "png-16" else np.uint8
        pixels = rng.integers(0, np.iinfo(dtype).max, (*shape, 3) if kind == "png-colour" else shape, dtype=dtype)
        return ".png", lambda path: Image.fromarray(pixels).save(path, format="PNG")
    pages = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.int16, np.float32, np.float64]))
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        pixels = rng.integers(info.min, info.max, (pages, *shape), dtype=dtype, endpoint=True)
    else:
        pixels = (rng.random((pages, *shape)) * 2 - 1) * draw(st.sampled_from([1.0, 3e38]))
        pixels = pixels.astype(dtype)
    return ".tif", lambda path: tifffile.imwrite(path, pixels[0] if pages == 1 else pixels, photometric="minisblack")


@st.composite
def volumes(draw, shape: tuple[int, int, int]) -> object:
    """A writer of a generated NIfTI volume of ``shape``: float32, int16 or uint8, normal values,
    values near float32's limit, or some NaN."""
    dtype = draw(st.sampled_from([np.float32, np.int16, np.uint8]))
    values = draw(st.sampled_from(["normal", "extreme", "nan", "constant"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    data = rng.random(shape) * 800
    if values == "extreme" and dtype == np.float32:
        data = (rng.random(shape) * 2 - 1) * 3e38
    elif values == "nan" and dtype == np.float32:
        data.flat[0] = np.nan
    elif values == "constant":
        data[:] = 7
    data = data.astype(dtype)
    return lambda path: nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.2, 2.0, 1.0])), path)


def run(capsys, *args) -> tuple[int, str, str]:
    """The command's exit status and output; an exception that escapes main is the test's failure."""
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def files_under(folder: Path) -> set[Path]:
    return {Path(root, name) for root, _, names in os.walk(folder) for name in names}


def assert_kept_the_promise(code: int, err: str, expected_errors: int = 1) -> None:
    event(f"exit status {code}")  # how the cases split (pytest --hypothesis-show-statistics)
    assert "Traceback" not in err, err
    if code == 0:
        return
    assert code in (1, 2), (code, err)
    errors = [line for line in err.splitlines() if "error:" in line or "failed:" in line]
    assert len(errors) == expected_errors or (code == 1 and errors), err


@CASES
@given(data=st.data(), rule=RULES)
def test_fuse_on_any_two_image_files(capsys, tiny_weights, data, rule):
    side = st.one_of(st.integers(1, 40), st.integers(16, 40))  # tiny sides (refused) and fusable ones
    shape_a = data.draw(st.tuples(side, side), "shape A")
    shape_b = (
        shape_a if data.draw(st.integers(0, 3), "same size unless 0") else data.draw(st.tuples(side, side), "shape B")
    )
    (suffix_a, write_a), (suffix_b, write_b) = data.draw(images(shape_a), "A"), data.draw(images(shape_b), "B")
    names = data.draw(
        st.tuples(file_names(suffix_a), file_names(suffix_b), file_names(".png")).filter(
            lambda names: len(set(names)) == 3
        ),
        "names",
    )
    with tempfile.TemporaryDirectory() as folder:
        work, outside = Path(folder, "work"), Path(folder, "outside")
        work.mkdir()
        outside.mkdir()
        paths = [work / name for name in names]
        write_a(paths[0])
        write_b(paths[1])
        code, out, err = run(
            capsys, "fuse", paths[0], paths[1], "-o", paths[2], "--weights", tiny_weights, "--rule", rule, "--quiet"
        )
        assert_kept_the_promise(code, err)
        assert files_under(Path(folder)) == set(paths[:2]) | ({paths[2]} if code == 0 else set())
        if code == 0:
            fused = load_image(paths[2])
            assert fused.shape[:2] == load_image(paths[0]).shape[:2]


@CASES
@given(data=st.data(), rule=RULES)
def test_fuse_on_any_two_nifti_volumes(capsys, tiny_weights, data, rule):
    shape = data.draw(st.tuples(*(st.integers(1, 9) for _ in range(3))), "shape")
    write_a, write_b = data.draw(volumes(shape), "A"), data.draw(volumes(shape), "B")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        write_a(work / "a.nii.gz")
        write_b(work / "b.nii")
        code, out, err = run(
            capsys,
            "fuse",
            work / "a.nii.gz",
            work / "b.nii",
            "-o",
            work / "f.nii.gz",
            "--weights",
            tiny_weights,
            "--rule",
            rule,
            "--quiet",
        )
        assert_kept_the_promise(code, err)
        assert files_under(work) == {work / "a.nii.gz", work / "b.nii"} | ({work / "f.nii.gz"} if code == 0 else set())
        if code == 0:
            fused = np.asarray(nib.load(work / "f.nii.gz").dataobj)
            assert fused.shape == shape and np.all(np.isfinite(fused)) and fused.min() >= 0 and fused.max() <= 1


FIELD = st.text(alphabet=string.ascii_letters + string.digits + "._/-", max_size=12)


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_batch_on_any_manifest(capsys, tiny_weights, data):
    good = st.tuples(st.just("a.nii"), st.just("b.nii"), st.just(""), st.sampled_from(["", "brain", "40/400"]))
    junk = st.lists(
        st.one_of(st.sampled_from(["a.nii", "b.nii", "missing.nii", "brain", ""]), FIELD), min_size=1, max_size=5
    )
    rows = data.draw(st.lists(st.one_of(good, junk), min_size=1, max_size=4), "rows")  # an empty out: a drawn name
    outputs = data.draw(st.lists(file_names(".nii.gz"), min_size=len(rows), max_size=len(rows)), "outputs")
    with tempfile.TemporaryDirectory() as folder:
        work, outside = Path(folder, "work"), Path(folder, "outside")
        work.mkdir()
        outside.mkdir()
        rng = np.random.default_rng(0)
        for name in ("a.nii", "b.nii"):
            nib.save(nib.Nifti1Image((rng.random((6, 7, 3)) * 500).astype(np.float32), np.eye(4)), work / name)
        lines = []
        for fields, out in zip(rows, outputs):
            fields = list(fields)
            if len(fields) >= 3 and not fields[2].strip():
                fields[2] = out
            lines.append(",".join(field.replace(",", "") for field in fields))
        manifest = work / "pairs.csv"
        manifest.write_bytes(("a,b,out,window\n" + "\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
        before = files_under(work)
        code, out, err = run(capsys, "batch", manifest, "--weights", tiny_weights, "--rule", "average", "--quiet")
        event(f"exit status {code}")
        assert "Traceback" not in err, err
        assert code in (0, 1, 2), (code, err)
        if code == 2:
            assert len([line for line in err.splitlines() if "error:" in line]) == 1, err
        assert files_under(outside) == set()
        for path in files_under(work) - before:
            assert path.is_relative_to(work)
            if path.name.endswith(".nii.gz"):
                assert np.all(np.isfinite(np.asarray(nib.load(path).dataobj)))


@pytest.mark.parametrize("fields", ["a.nii,b.nii,f.nii.gz,brain,extra", "a.nii"])
def test_batch_names_the_line_of_a_manifest_with_the_wrong_number_of_fields(tmp_path, capsys, tiny_weights, fields):
    (tmp_path / "pairs.csv").write_text(f"a,b,out,window\n{fields}\n")
    code, _, err = run(capsys, "batch", tmp_path / "pairs.csv", "--weights", tiny_weights)
    assert code in (1, 2) and "Traceback" not in err and ("line 2" in err)
