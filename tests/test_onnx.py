"""The ONNX export (``medfuse.integrations.onnx``, ``medfuse export-onnx``): the exported graph,
run by onnxruntime, fuses every bundled pair as ``medfuse.fuse`` does, within one grey level;
its metadata; the refusals, each one line with nothing written. The tests that export or run
a file skip, saying why, where onnx, onnxscript or onnxruntime is missing."""

import sys

import numpy as np
import pytest

import medfuse
from medfuse._shared.errors import InputError, MissingDependencyError
from medfuse._shared.optional import import_optional
from medfuse.cli import main
from medfuse.dran.models import weights_digest
from medfuse.io.images import load_image

PAIRS = [
    ("CT-MRI", "CT", "41010"),
    ("PET-MRI", "PET", "25015"),
    ("PET-MRI", "PET", "25022"),
    ("SPECT-MRI", "SPECT", "10018"),
]
"""Every bundled pair: MRI (grey) with CT (grey), PET and SPECT (colour)."""
MISSING = "not installed (pip install 'medfuse[onnx]')"


@pytest.fixture(scope="module")
def onnx_tools():
    for name in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(name, reason=f"{name} is {MISSING}")
    from medfuse.integrations import onnx

    return onnx


@pytest.fixture(scope="module")
def shipped_export(onnx_tools, tmp_path_factory):
    """The default rule and the shipped weights, exported for the bundled pairs' 256 x 256."""
    return onnx_tools.export_onnx(tmp_path_factory.mktemp("onnx") / "default.onnx")


@pytest.fixture(scope="module")
def shipped_fusion(onnx_tools, shipped_export):
    return onnx_tools.OnnxFusion(shipped_export, threads=1)


def test_the_export_holds_what_made_it(shipped_fusion):
    assert shipped_fusion.metadata == {
        "medfuse_version": medfuse.__version__,
        "rule": medfuse.DEFAULT_RULE,
        "weights": medfuse.DEFAULT_MODEL,
        "weights_sha256": weights_digest(medfuse.DEFAULT_MODEL),
        "height": "256",
        "width": "256",
    }
    assert shipped_fusion.size == (256, 256)


@pytest.mark.parametrize("folder, modality, stem", PAIRS)
def test_onnxruntime_fuses_every_bundled_pair_as_medfuse_fuse(shipped_fusion, samples, folder, modality, stem):
    mri = load_image(samples / folder / "MRI" / f"{stem}.png")
    other = load_image(samples / folder / modality / f"{stem}.png")
    fused, w_a = shipped_fusion.fuse_with_weights(mri, other)
    expected, expected_w_a = medfuse.fuse_with_weights(mri, other, medfuse.DEFAULT_RULE)
    assert fused.shape == expected.shape and fused.dtype == expected.dtype == np.uint8
    assert np.abs(fused.astype(np.int16) - expected.astype(np.int16)).max() <= 1
    assert np.abs(w_a - expected_w_a).max() <= 1e-5
    assert fused.std() > 10  # a real fusion, not a blank image that two broken paths could share


def test_another_size_is_refused_in_one_line(shipped_fusion, phantom):
    with pytest.raises(InputError, match=r"fuses 256 x 256 images only, got 64 x 64; .*--size 64 64") as caught:
        shipped_fusion.fuse(phantom, phantom)
    assert "\n" not in str(caught.value)


def test_a_file_not_written_by_the_export_is_refused(onnx_tools, tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(InputError, match="not an ONNX model onnxruntime can run"):
        onnx_tools.OnnxFusion(path)


def test_a_feature_rule_is_refused_before_any_work(onnx_tools, tmp_path):
    with pytest.raises(
        InputError, match="rules with one: pyramid-energy, sfnn-map, sfnn-map-e4, sfnn-pyramid, trained-pyramid$"
    ):
        onnx_tools.export_onnx(tmp_path / "sfnn.onnx", rule="sfnn")
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_exports_a_file_that_fuses_as_medfuse_fuse(
    onnx_tools, tiny_model, tiny_weights, tmp_path, capsys
):
    """Another rule, other weights and a size that is not square (the nuclear norms then transpose)."""
    out = tmp_path / "tiny.onnx"
    assert (
        main(["export-onnx", str(out), "--rule", "sfnn-map", "--weights", str(tiny_weights), "--size", "24", "40"]) == 0
    )
    assert f"wrote {out}" in capsys.readouterr().out
    fusion = onnx_tools.OnnxFusion(out)
    assert fusion.metadata["rule"] == "sfnn-map" and fusion.metadata["weights"] == "tiny.safetensors"
    rng = np.random.default_rng(0)
    grey, colour = rng.random((24, 40)), rng.random((24, 40, 3))
    expected = medfuse.fuse(grey, colour, "sfnn-map", model=tiny_model)
    assert np.abs(fusion.fuse(grey, colour) - expected).max() <= 1 / 255
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left beside it


def test_the_command_line_refuses_a_feature_rule_in_one_line(tmp_path, capsys):
    assert main(["export-onnx", str(tmp_path / "f.onnx"), "--rule", "fer"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "medfuse export-onnx: error: rule 'fer'" in error and "sfnn-pyramid" in error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("library", ["onnx", "onnxscript"])
def test_without_the_exporter_the_command_line_names_the_extra(monkeypatch, tmp_path, capsys, library):
    if library == "onnxscript":
        pytest.importorskip("onnx", reason=f"onnx is {MISSING}: its own message comes first")
    monkeypatch.setitem(sys.modules, library, None)  # as if not installed: importing it fails
    assert main(["export-onnx", str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err == (
        f"medfuse export-onnx: error: {library} is not installed; it comes with the "
        '[onnx] extra: pip install "medfuse[onnx]"\n'
    )
    assert list(tmp_path.iterdir()) == []


def test_without_onnxruntime_running_a_file_names_the_extra(monkeypatch, tmp_path):
    from medfuse.integrations.onnx import OnnxFusion

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"onnxruntime is not installed; .*medfuse\[onnx\]"):
        OnnxFusion(tmp_path / "m.onnx")


def test_a_library_whose_own_import_fails_is_not_called_missing(monkeypatch, tmp_path):
    (tmp_path / "medfuse_test_broken.py").write_text("import medfuse_test_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="medfuse_test_absent_dependency") as caught:
        import_optional("medfuse_test_broken", "onnx")
    assert not isinstance(caught.value, MissingDependencyError)
    with pytest.raises(MissingDependencyError, match=r"medfuse_test_absent_dependency is not installed"):
        import_optional("medfuse_test_absent_dependency", "onnx")


def handmade_onnx(
    path,
    height="8",
    width="8",
    shape=(1, 1, 8, 8),
    inputs=("image_a", "image_b"),
    outputs=("fused", "weight_a"),
    element="FLOAT",
    drop=(),
):
    """A small ONNX file made here, not by the export: each output copies an input (``fused`` is A),
    with medfuse's metadata (``drop``: keys left out) and the given size, shapes and names."""
    onnx = pytest.importorskip("onnx", reason=f"onnx is {MISSING}")
    pytest.importorskip("onnxruntime", reason=f"onnxruntime is {MISSING}")
    helper, kind = onnx.helper, getattr(onnx.TensorProto, element)
    graph = helper.make_graph(
        [helper.make_node("Identity", [source], [target]) for source, target in zip(inputs, outputs)],
        "handmade",
        [helper.make_tensor_value_info(name, kind, list(shape)) for name in inputs],
        [helper.make_tensor_value_info(name, kind, list(shape)) for name in outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    metadata = {
        "medfuse_version": medfuse.__version__,
        "rule": "handmade",
        "weights": "none",
        "weights_sha256": "0" * 64,
        "height": height,
        "width": width,
    }
    helper.set_model_props(model, {key: value for key, value in metadata.items() if key not in drop})
    onnx.save_model(model, str(path))
    return path


def test_a_handmade_file_with_medfuses_metadata_and_graph_runs(tmp_path):
    from medfuse.integrations.onnx import OnnxFusion

    fusion = OnnxFusion(handmade_onnx(tmp_path / "ok.onnx"), threads=1)
    image_a, image_b = np.full((8, 8), 40, np.uint8), np.full((8, 8), 200, np.uint8)
    fused, w_a = fusion.fuse_with_weights(image_a, image_b)
    assert fusion.size == (8, 8) and (fused == 40).all() and np.allclose(w_a, 200 / 255)


@pytest.mark.parametrize(
    "changes, words",
    [
        (dict(height="abc"), "its metadata's height is 'abc', not a whole number of pixels of at least 2"),
        (dict(width=""), "its metadata's width is '', not a whole number"),
        (dict(height="2.5"), "height is '2.5'"),
        (dict(height="-8"), "height is '-8'"),
        (dict(height=" 8"), "height is ' 8'"),
        (dict(height="1", shape=(1, 1, 1, 8)), "height is '1'"),
        (dict(height="٨"), "height is '٨'"),  # a digit, but not an ASCII one
        (dict(drop=("width",)), "its metadata lacks width"),
        (
            dict(height="16"),
            "its graph's image_a is tensor(float) of shape [1, 1, 8, 8], where its metadata's size "
            "asks for tensor(float) of shape [1, 1, 16, 8]",
        ),
        (dict(inputs=("x", "y")), "its graph takes x, y and gives fused, weight_a; a medfuse export takes"),
        (dict(inputs=("image_a",), outputs=("fused",)), "its graph takes image_a and gives fused;"),
        (dict(element="DOUBLE"), "its graph's image_a is tensor(double)"),
        (dict(shape=("n", 1, 8, 8)), "of shape ['n', 1, 8, 8]"),
    ],
)
def test_a_file_with_malformed_metadata_or_graph_is_refused_in_one_line(tmp_path, changes, words):
    from medfuse.integrations.onnx import OnnxFusion

    path = handmade_onnx(tmp_path / "odd.onnx", **changes)
    with pytest.raises(InputError) as caught:
        OnnxFusion(path)
    assert str(caught.value).startswith(f"{path}: ") and words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_threads_that_are_not_a_count_are_refused(tmp_path):
    from medfuse.integrations.onnx import OnnxFusion

    path = handmade_onnx(tmp_path / "ok.onnx")
    for threads in ("2", 1.5, 0, True):
        with pytest.raises(InputError, match="threads must be a whole number of at least 1"):
            OnnxFusion(path, threads=threads)


def test_a_graph_that_fails_or_gives_another_shape_as_it_runs_is_one_line(tmp_path):
    from medfuse.integrations.onnx import OnnxFusion

    fusion = OnnxFusion(handmade_onnx(tmp_path / "ok.onnx"))
    image = np.zeros((8, 8), np.uint8)

    class Failing:
        def run(self, names, feeds):
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION :\nNon-zero status code")

    class Reshaping:
        def run(self, names, feeds):
            return [np.zeros((1, 64)), np.zeros((1, 1, 8, 8))]

    for session, words in (
        (Failing(), "onnxruntime could not run it ([ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : "),
        (Reshaping(), "its graph gave fused of shape [1, 64], not [1, 1, 8, 8]"),
    ):
        fusion.session = session
        with pytest.raises(InputError) as caught:
            fusion.fuse(image, image)
        assert words in str(caught.value) and "\n" not in str(caught.value)
