"""The MONAI transforms and bundle (``medfuse[monai]``): a real MONAI pipeline from two NIfTI files
to a saved fused NIfTI, the same numbers as ``medfuse.fuse_volumes`` and ``medfuse.fuse``, the
refusals, and the bundle run by ``python -m monai.bundle run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

monai = pytest.importorskip("monai", reason="MONAI is not installed (pip install 'medfuse[monai]')")

import torch  # noqa: E402
from monai.data import MetaTensor  # noqa: E402
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, SaveImaged, ScaleIntensityRanged  # noqa: E402
from volume_data import oblique_affine, phantom, write_nifti  # noqa: E402

import medfuse  # noqa: E402
from medfuse._shared.errors import InputError, OutputError  # noqa: E402
from medfuse.dran.models import weights_digest  # noqa: E402
from medfuse.integrations.monai import FuseDRAN, FuseDRANd, write_bundle  # noqa: E402
from medfuse.io.images import load_image  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "medfuse" / "samples"
SHAPE = (24, 20, 3)
MANDATORY_METADATA = {
    "version",
    "monai_version",
    "pytorch_version",
    "numpy_version",
    "task",
    "description",
    "authors",
    "copyright",
    "network_data_format",
}
"""The keys the MONAI Bundle Specification makes mandatory in metadata.json."""


def nifti_pair(folder: Path) -> tuple[Path, Path, np.ndarray]:
    affine = oblique_affine()
    mri = write_nifti(folder / "mri.nii.gz", 800 * phantom(SHAPE), affine)
    ct = write_nifti(folder / "ct.nii.gz", 80 * phantom(SHAPE, inner=0.1, outer=1.0, shift=0.3), affine)
    return mri, ct, affine


def test_a_monai_pipeline_fuses_two_nifti_files_into_a_saved_nifti(tmp_path):
    mri, ct, affine = nifti_pair(tmp_path)
    keys = ("mri", "ct")
    pipeline = Compose(
        [
            LoadImaged(keys, image_only=True),
            EnsureChannelFirstd(keys),
            ScaleIntensityRanged("mri", 0, 800, 0, 1, clip=True),
            ScaleIntensityRanged("ct", 0, 80, 0, 1, clip=True),
            FuseDRANd(keys, output_key="fused", weight_map_key="w_mri"),
            SaveImaged(
                "fused", output_dir=tmp_path / "out", output_postfix="fused", separate_folder=False, print_log=False
            ),
        ]
    )
    result = pipeline({"mri": str(mri), "ct": str(ct)})
    saved = nib.load(tmp_path / "out" / "mri_fused.nii.gz")
    np.testing.assert_allclose(saved.affine, affine, atol=1e-5)
    expected = medfuse.fuse_volumes(
        medfuse.load_model(), phantom(SHAPE), phantom(SHAPE, inner=0.1, outer=1.0, shift=0.3), medfuse.DEFAULT_RULE
    )
    np.testing.assert_allclose(saved.get_fdata(), expected, atol=1e-6)
    assert expected.std() > 0.05
    fused = result["fused"]
    assert fused.meta["medfuse_rule"] == medfuse.DEFAULT_RULE
    assert fused.meta["medfuse_weights_sha256"] == weights_digest(medfuse.DEFAULT_MODEL)
    assert fused.meta["medfuse_source_b"].endswith("ct.nii.gz")
    weights = result["w_mri"][0].numpy()
    assert weights.shape == SHAPE and 0 <= weights.min() < weights.max() <= 1


def test_a_png_pair_read_by_monai_fuses_as_medfuse_fuse_does():
    a, b = (SAMPLES / "CT-MRI" / name / "41010.png" for name in ("MRI", "CT"))
    keys = ("a", "b")
    loaded = Compose(
        [LoadImaged(keys, image_only=True), EnsureChannelFirstd(keys), ScaleIntensityRanged(keys, 0, 255, 0, 1)]
    )({"a": str(a), "b": str(b)})
    fused = FuseDRANd(keys)(loaded)["fused"]
    expected = medfuse.fuse(load_image(a), load_image(b)) / 255.0
    assert np.abs(fused[0].numpy().T - expected).max() <= 0.5 / 255


def test_the_array_transform_keeps_a_s_metadata():
    a = MetaTensor(
        torch.from_numpy(phantom(SHAPE)[None]),
        affine=torch.from_numpy(oblique_affine()),
        meta={"filename_or_obj": "a.nii", "patient": "P001"},
    )
    b = MetaTensor(torch.from_numpy(phantom(SHAPE, shift=0.3)[None]), affine=torch.from_numpy(oblique_affine()))
    fused = FuseDRAN(rule="sfnn-map")(a, b)
    assert fused.shape == (1, *SHAPE) and fused.meta["patient"] == "P001"
    np.testing.assert_allclose(fused.affine.numpy(), oblique_affine())
    assert fused.meta["medfuse_source_a"] == "a.nii" and fused.meta["medfuse_rule"] == "sfnn-map"


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda a, b: (a, MetaTensor(b.as_tensor(), affine=torch.from_numpy(oblique_affine(origin=(0, 0, 0))))),
            "not on one grid",
        ),
        (lambda a, b: (a, b[:, :-1]), "not on one grid"),
        (lambda a, b: (a, b * 3), "values must lie in [0, 1]"),
        (lambda a, b: (torch.cat([a, a]), b), "one-channel"),
    ],
)
def test_pairs_that_cannot_be_fused_are_refused_in_one_line(change, message):
    a = MetaTensor(torch.from_numpy(phantom(SHAPE)[None]), affine=torch.from_numpy(oblique_affine()))
    b = MetaTensor(torch.from_numpy(phantom(SHAPE, shift=0.3)[None]), affine=torch.from_numpy(oblique_affine()))
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        FuseDRAN()(*change(a, b))


def test_bad_settings_are_refused_when_the_transform_is_made():
    with pytest.raises(InputError, match="unknown fusion rule"):
        FuseDRANd(("a", "b"), rule="nope")
    with pytest.raises(InputError, match="two keys"):
        FuseDRANd(("a", "b", "c"))
    with pytest.raises(InputError, match="no weight map"):
        FuseDRANd(("a", "b"), rule="sfnn", weight_map_key="w")


def test_the_bundle_runs_with_monai_bundle_run(tmp_path):
    bundle = write_bundle(tmp_path / "dran_havard")
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert MANDATORY_METADATA <= set(metadata) and not any("_VERSION" in str(value) for value in metadata.values())
    assert metadata["monai_version"] == monai.__version__ and metadata["version"] == medfuse.__version__
    assert (bundle / "models" / "model.safetensors").read_bytes() == medfuse.dran.models.weights_path().read_bytes()
    assert (bundle / "docs" / "README.md").exists()
    pairs = tmp_path / "pairs"
    for name in ("MRI", "CT"):
        (pairs / name).mkdir(parents=True)
        for sample in ("41010",):
            (pairs / name / f"{sample}.png").write_bytes((SAMPLES / "CT-MRI" / name / f"{sample}.png").read_bytes())
    out = tmp_path / "fused"
    command = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        str(bundle / "configs" / "inference.json"),
        "--meta_file",
        str(bundle / "configs" / "metadata.json"),
        "--bundle_root",
        str(bundle),
        "--dataset_dir",
        str(pairs),
        "--output_dir",
        str(out),
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert run.returncode == 0, run.stderr[-2000:]
    fused_files = sorted(out.rglob("*.nii.gz"))
    assert [path.name for path in fused_files] == ["41010_fused.nii.gz"]
    fused = nib.load(fused_files[0]).get_fdata()
    expected = medfuse.fuse(*(load_image(pairs / name / "41010.png") for name in ("MRI", "CT"))) / 255.0
    assert np.abs(fused.T - expected).max() <= 0.5 / 255


def test_an_existing_bundle_folder_is_refused(tmp_path):
    (tmp_path / "bundle").mkdir()
    with pytest.raises(OutputError, match="exists"):
        write_bundle(tmp_path / "bundle")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bundle"]


def test_the_bundle_metadata_passes_monai_verify_metadata(tmp_path):
    from monai.bundle import verify_metadata

    bundle = write_bundle(tmp_path / "bundle")
    schema = tmp_path / "schema.json"
    try:
        verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), filepath=str(schema))
    except (OSError, RuntimeError) as error:
        if schema.exists() and schema.stat().st_size:
            raise
        pytest.skip(f"verify_metadata downloads its schema, which is out of reach here: {error}")


def test_without_monai_the_module_says_what_to_install(monkeypatch):
    import importlib

    from medfuse._shared.errors import MissingDependencyError

    monkeypatch.delitem(sys.modules, "medfuse.integrations.monai")
    monkeypatch.setitem(sys.modules, "monai", None)
    with pytest.raises(MissingDependencyError, match=r'monai is not installed; .* pip install "medfuse\[monai\]"'):
        importlib.import_module("medfuse.integrations.monai")
