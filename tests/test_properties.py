"""Property-based tests (Hypothesis): the metrics on any images, the readers on damaged files.

Metrics: every value is a float within the metric's range, symmetric in A and B where the
definition is, exact where the fused image is a source, defined for constant images, and
tiny images give a value or a clear ValueError, never NaN or another exception. Readers: a
truncated or corrupted PNG, TIFF, NIfTI or DICOM file gives the reader's one error type (which
the command line prints as one line), never another exception, and never hangs.
"""

import math
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import png
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from volume_data import ct_hu, oblique_affine, phantom, write_dicom_series, write_nifti

from medfuse import metrics
from medfuse.cli import main
from medfuse.io.images import ImageFileError, load_image, save_image
from medfuse.io.volumes import VolumeFileError, read_volume

BOUNDS = {  # name: (lowest, highest) that the definition allows, for 8-bit images
    "en": (0, 8),
    "sd": (0, 127.5),
    "sf": (0, math.inf),
    "ag": (0, math.inf),
    "mi": (0, 16),
    "fmi": (0, 1),
    "qabf": (0, 1),
    "nabf": (0, 1),
    "vif": (0, math.inf),
    "scd": (-2, 2),
    "cc": (-1, 1),
    "ssim": (-1, 1),
    "psnr": (0, math.inf),
    "fsim": (0, 1),
    "qcb": (0, 1),
    "qcv": (0, math.inf),
}
SOURCE_SIMILARITIES = ("ssim", "cc", "fsim")  # mean over the sources of a symmetric similarity, 1 at identity
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def triples(min_side: int, max_side: int) -> st.SearchStrategy:
    """Three uint8 images of one shape."""
    return st.tuples(st.integers(min_side, max_side), st.integers(min_side, max_side)).flatmap(
        lambda shape: st.tuples(*(arrays(np.uint8, shape) for _ in range(3)))
    )


def assert_in_bounds(name: str, value: float) -> None:
    low, high = BOUNDS[name]
    assert type(value) is float and not math.isnan(value), f"{name}: {value}"
    assert low - 1e-9 <= value <= high + 1e-9, f"{name}: {value} outside [{low}, {high}]"


def test_every_metric_has_bounds():
    assert set(BOUNDS) == set(metrics.METRICS)


@FAST
@given(triples(11, 40))
def test_metrics_lie_within_their_bounds(images):
    fused, a, b = images
    for name in metrics.METRICS:
        assert_in_bounds(name, metrics.score(name, fused, a, b))


@FAST
@given(triples(11, 32))
def test_metrics_are_symmetric_in_the_sources_where_defined_so(images):
    fused, a, b = images
    for name, metric in metrics.METRICS.items():
        if metric.needs_sources and name != "fmi":  # fmi.m's test for B's identical windows is not
            forward, backward = metrics.score(name, fused, a, b), metrics.score(name, fused, b, a)
            assert forward == pytest.approx(backward, rel=1e-9, abs=1e-12), name


@FAST
@given(triples(11, 32))
def test_a_fused_image_equal_to_a_source(images):
    _, a, b = images
    assert metrics.psnr(a, a, b) == math.inf and metrics.fmi(a, a, a) == 1.0
    for name in SOURCE_SIMILARITIES:
        if name == "cc" and (a.min() == a.max() or b.min() == b.max()):
            continue  # the correlation of a constant image is taken as 0, even with itself
        # mean of sim(A, A) = 1 and sim(B, A), where score(B, A, A) = sim(A, B)
        assert metrics.score(name, a, a, b) == pytest.approx((1 + metrics.score(name, b, a, a)) / 2, abs=1e-9), name
        assert metrics.score(name, a, a, a) == pytest.approx(1.0, abs=1e-9), name


@FAST
@given(st.integers(11, 24), st.integers(11, 24), st.lists(st.integers(0, 255), min_size=3, max_size=3))
def test_constant_images_have_defined_values(height, width, values):
    fused, a, b = (np.full((height, width), value, np.uint8) for value in values)
    for name in metrics.METRICS:
        value = metrics.score(name, fused, a, b)
        if name == "psnr" and values[0] == values[1] == values[2]:
            assert value == math.inf
        else:
            assert_in_bounds(name, value)
    assert metrics.en(fused) == metrics.sd(fused) == metrics.sf(fused) == metrics.ag(fused) == 0.0
    assert metrics.fsim(fused, fused, fused) == metrics.ssim(fused, fused, fused) == 1.0


@FAST
@given(triples(1, 12))
def test_tiny_images_give_a_value_or_a_clear_error(images):
    fused, a, b = images
    for name in metrics.METRICS:
        try:
            value = metrics.score(name, fused, a, b)
        except ValueError as error:
            assert "pixels" in str(error) or "window" in str(error), f"{name}: {error}"
            continue
        if not (name == "psnr" and value == math.inf):
            assert_in_bounds(name, value)


@contextmanager
def time_limit(seconds: int):
    def stop(signum, frame):
        raise TimeoutError(f"the reader ran over {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def good_files(tmp_path_factory, phantom) -> dict[str, Path]:
    """One intact file of every kind the readers take."""
    folder = tmp_path_factory.mktemp("good")
    colour = np.stack([phantom, phantom[::-1], phantom.T], axis=-1)
    files = {
        "grey.png": save_image(folder / "grey.png", phantom),
        "colour.png": save_image(folder / "colour.png", colour),
        "sixteen.png": write_colour_png16(folder / "sixteen.png", colour.astype(np.uint16) * 257),
        "grey.tif": save_image(folder / "grey.tif", phantom.astype(np.uint16) * 257),
        "volume.nii": write_nifti(folder / "volume.nii", phantom_volume(), oblique_affine()),
        "volume.nii.gz": write_nifti(folder / "volume.nii.gz", phantom_volume(), oblique_affine()),
    }
    series = write_dicom_series(folder / "series", ct_hu(), shuffle=False)
    files["slice.dcm"] = sorted(series.iterdir())[0]
    return files


def write_colour_png16(path: Path, image: np.ndarray) -> Path:
    """A 16-bit RGB PNG (medfuse writes those as TIFF; it reads them through pypng)."""
    height, width, _ = image.shape
    with open(path, "wb") as file:
        png.Writer(width, height, greyscale=False, bitdepth=16).write(file, image.reshape(height, width * 3))
    return path


def phantom_volume() -> np.ndarray:
    return phantom() * 500


def damage(data: bytes, cut: float, flips: list[tuple[float, int]]) -> bytes:
    """``data`` cut at the fraction ``cut`` of its length, with bytes at the fractions of
    ``flips`` XOR-ed with their values."""
    damaged = bytearray(data[: int(len(data) * cut)])
    for where, value in flips:
        if damaged:
            damaged[int(where * (len(damaged) - 1))] ^= value
    return bytes(damaged)


DAMAGE = st.tuples(st.floats(0, 1), st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=8))


@pytest.mark.parametrize(
    "kind", ["grey.png", "colour.png", "sixteen.png", "grey.tif", "volume.nii", "volume.nii.gz", "slice.dcm"]
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damaged=DAMAGE)
def test_damaged_files_give_the_readers_error(tmp_path, good_files, kind, damaged):
    source = good_files[kind]
    path = tmp_path / source.name
    path.write_bytes(damage(source.read_bytes(), *damaged))
    image_file = kind.endswith((".png", ".tif"))
    with time_limit(20):
        try:
            result = load_image(path) if image_file else read_volume(path)
        except (ImageFileError, VolumeFileError) as error:  # the reader's own kind, checked below
            assert isinstance(error, ImageFileError if image_file else VolumeFileError)
            assert str(path) in str(error) and "\n" not in str(error)
            return
    array = result if image_file else result.volume.data  # bytes that still decode: a valid result
    assert array.ndim in (2, 3) and array.size > 0


def test_a_damaged_file_is_one_line_on_the_command_line(tmp_path, good_files, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(good_files["grey.png"].read_bytes()[:300])
    good = good_files["grey.png"]
    assert main(["fuse", str(broken), str(good), "-o", str(tmp_path / "f.png")]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "broken.png" in stderr and not (tmp_path / "f.png").exists()
