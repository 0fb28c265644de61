"""``medfuse batch --bids-derivatives``: a tiny raw BIDS dataset of synthetic volumes in, a
derivative dataset out, read back with pybids; refusals before any work; reruns."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from volume_data import phantom, write_nifti

import medfuse
from medfuse.cli import main
from medfuse.integrations.bids import fusion_name, parse_name, sidecar_path

SHAPE = (8, 12, 10)
AFFINE = np.diag([1.0, 1.2, 2.0, 1.0])
T1_01 = "raw/sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz"
PET_01 = "raw/sub-01/ses-01/pet/sub-01_ses-01_pet.nii.gz"
T1_02 = "raw/sub-02/anat/sub-02_T1w.nii.gz"
T2_02 = "raw/sub-02/anat/sub-02_T2w.nii.gz"
DERIVATIVES = Path("raw/derivatives/medfuse")
FUSED_01 = DERIVATIVES / "sub-01/ses-01/anat/sub-01_ses-01_desc-dranfusion_T1w.nii.gz"
FUSED_02 = DERIVATIVES / "sub-02/anat/sub-02_desc-dranfusion_T1w.nii.gz"


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def dataset(tmp_path) -> Path:
    """A raw BIDS dataset in ``tmp_path/raw`` (two subjects, one with a session) and a manifest
    ``tmp_path/pairs.csv`` without an out column; returns ``tmp_path``."""
    volumes = {
        T1_01: phantom(SHAPE) * 700,
        PET_01: phantom(SHAPE, inner=0.2, outer=1.0) * 50,
        T1_02: phantom(SHAPE, shift=0.2) * 700,
        T2_02: phantom(SHAPE, inner=0.1) * 300,
    }
    for relative, data in volumes.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        write_nifti(tmp_path / relative, data, AFFINE)
    (tmp_path / "raw" / "dataset_description.json").write_text(json.dumps({"Name": "tiny", "BIDSVersion": "1.10.0"}))
    (tmp_path / "pairs.csv").write_text(f"a,b\n{T1_01},{PET_01}\n{T1_02},{T2_02}\n")
    return tmp_path


def batch(capsys, folder: Path, weights, *extra) -> tuple[int, str, str]:
    return run_cli(
        capsys,
        "batch",
        folder / "pairs.csv",
        "--bids-derivatives",
        folder / "raw",
        "--weights",
        weights,
        "--rule",
        "average",
        *extra,
    )


def test_names_keep_a_sources_entities_and_add_desc():
    name = parse_name("sub-01_ses-02_acq-mprage_run-1_T1w.nii.gz")
    assert name.label("sub") == "01" and name.label("ses") == "02" and name.suffix == "T1w"
    assert fusion_name(name).text() == "sub-01_ses-02_acq-mprage_run-1_desc-dranfusion_T1w.nii.gz"
    assert fusion_name(parse_name("sub-7_desc-preproc_pet.nii")).text() == "sub-7_desc-dranfusion_pet.nii.gz"
    assert sidecar_path(Path("a/sub-01_desc-dranfusion_T1w.nii.gz")) == Path("a/sub-01_desc-dranfusion_T1w.json")
    for bad in ("t1.nii.gz", "sub-01_T1w.png", "sub-01.nii.gz", "sub-01_ses-1_ses-2_T1w.nii", "sub_01_T1w.nii"):
        with pytest.raises(ValueError, match="is not a BIDS name"):
            parse_name(bad)


def test_batch_writes_a_derivative_dataset_that_pybids_reads(dataset, capsys, tiny_weights):
    bids = pytest.importorskip("bids", reason="pybids (the test extra) reads the derivative dataset back")
    code, stdout, stderr = batch(capsys, dataset, tiny_weights)
    assert code == 0, stderr
    assert "2 pair(s): 2 fused, 0 skipped (output exists), 0 failed" in stdout

    layout = bids.BIDSLayout(dataset / "raw", derivatives=True)
    fused = layout.get(scope="medfuse", desc="dranfusion", extension=".nii.gz")
    assert sorted(Path(f.path) for f in fused) == [dataset / FUSED_01, dataset / FUSED_02]
    entities = {f.get_entities()["subject"]: f.get_entities() for f in fused}
    assert entities["01"] == {
        "subject": "01",
        "session": "01",
        "datatype": "anat",
        "desc": "dranfusion",
        "suffix": "T1w",
        "extension": ".nii.gz",
    }
    assert "session" not in entities["02"] and entities["02"]["datatype"] == "anat"
    metadata = layout.get_metadata(str(dataset / FUSED_01))
    assert metadata["Sources"] == [
        "bids:raw:sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz",
        "bids:raw:sub-01/ses-01/pet/sub-01_ses-01_pet.nii.gz",
    ]
    assert metadata["Rule"] == "average" and metadata["Weights"] == str(tiny_weights)
    assert len(metadata["WeightsSha256"]) == 64 and metadata["Window"] == "" and metadata["Percentiles"] == [0.5, 99.5]

    description = json.loads((dataset / DERIVATIVES / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"] == "1.10.0"
    assert description["DatasetLinks"] == {"raw": "../.."}
    (generator,) = description["GeneratedBy"]
    assert generator["Name"] == "medfuse" and generator["Version"] == "0.1.0"
    assert f"rule average and the weights of SHA-256 {metadata['WeightsSha256']}" in generator["Description"]
    assert (dataset / DERIVATIVES / ".bidsignore").read_text() == "*.medfuse.json\n"
    # the fusion lies on A's grid and keeps its affine
    image = nib.load(dataset / FUSED_01)
    assert image.shape == SHAPE and np.allclose(image.affine, AFFINE)


def test_rerun_skips_restores_a_lost_sidecar_and_refuses_another_rule(dataset, capsys, tiny_weights):
    assert batch(capsys, dataset, tiny_weights)[0] == 0
    fused_time = (dataset / FUSED_01).stat().st_mtime_ns
    description = (dataset / DERIVATIVES / "dataset_description.json").read_bytes()
    sidecar = sidecar_path(dataset / FUSED_02)
    kept = sidecar.read_text()
    sidecar.unlink()  # as if a run had stopped between a fusion and its sidecar

    code, stdout, _ = batch(capsys, dataset, tiny_weights)
    assert code == 0 and "0 fused, 2 skipped (output exists), 0 failed" in stdout
    assert sidecar.read_text() == kept and (dataset / FUSED_01).stat().st_mtime_ns == fused_time
    assert (dataset / DERIVATIVES / "dataset_description.json").read_bytes() == description

    code, stdout, stderr = run_cli(
        capsys,
        "batch",
        dataset / "pairs.csv",
        "--bids-derivatives",
        dataset / "raw",
        "--weights",
        tiny_weights,
        "--rule",
        "sfnn",
    )
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert "holds fusions made otherwise" in stderr and "rule average" in stderr and "rule sfnn " in stderr
    assert (dataset / FUSED_01).stat().st_mtime_ns == fused_time

    # the same A with another B: the old fusion is not passed off as this one
    (dataset / "pairs.csv").write_text(f"a,b\n{T1_02},{T2_02}\n{T1_01},{T1_01}\n")
    code, stdout, stderr = batch(capsys, dataset, tiny_weights)
    assert code == 1 and "0 fused, 1 skipped (output exists), 1 failed" in stdout
    assert "line 3 failed" in stderr and "sub-01_ses-01_T1w.nii.gz'] now); delete it" in stderr  # B's path, elided


def test_rows_that_cannot_be_derivatives_are_refused_before_any_work(dataset, capsys, tiny_weights):
    raw = dataset / "raw"
    write_nifti(raw / "sub-01/ses-01/anat/t1.nii.gz", phantom(SHAPE), AFFINE)
    write_nifti(raw / "sub-03_T1w.nii.gz", phantom(SHAPE), AFFINE)
    write_nifti(dataset / "sub-04_T1w.nii.gz", phantom(SHAPE), AFFINE)
    (raw / "sub-01/ses-01/anat/sub-01_ses-01_T1w.png").write_bytes(b"not a volume")
    (dataset / "pairs.csv").write_text(
        "a,b,out\n"
        f"raw/sub-01/ses-01/anat/t1.nii.gz,{PET_01},\n"
        f"raw/sub-01/ses-01/anat/sub-01_ses-01_T1w.png,{PET_01},\n"
        f"raw/sub-03_T1w.nii.gz,{PET_01},\n"
        f"sub-04_T1w.nii.gz,{PET_01},\n"
        f"{T1_02},{PET_01},\n"
        f"{T1_01},{PET_01},fused.nii.gz\n"
        f"{T1_02},{T2_02},\n"
    )
    code, stdout, stderr = batch(capsys, dataset, tiny_weights)
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert "6 row(s) cannot be BIDS derivatives, nothing was fused" in stderr
    assert "line 2: t1.nii.gz is not a BIDS name" in stderr
    assert "line 3: " in stderr and "sub-01_ses-01_T1w.png is not a NIfTI volume" in stderr
    assert "line 4: " in stderr and "sub-03_T1w.nii.gz is not in its BIDS folder sub-03/<datatype>" in stderr
    assert "line 5: " in stderr and "sub-04_T1w.nii.gz is not inside the BIDS dataset" in stderr
    assert "line 6: " in stderr and "sub-01_ses-01_pet.nii.gz is of subject 01, A of subject 02" in stderr
    assert "line 7: out fused.nii.gz is given" in stderr and "line 8" not in stderr
    assert not (raw / "derivatives").exists()


def test_a_folder_that_is_no_bids_dataset_and_resampling_to_b_are_refused(dataset, capsys, tiny_weights):
    code, _, stderr = batch(capsys, dataset, tiny_weights, "--resample-to", "B")
    assert code == 2 and "--resample-to B would put it on B's" in stderr and stderr.count("\n") == 1
    (dataset / "raw" / "dataset_description.json").unlink()
    code, _, stderr = batch(capsys, dataset, tiny_weights)
    assert code == 2 and "is not a BIDS dataset: it has no dataset_description.json" in stderr
    assert not (dataset / "raw" / "derivatives").exists()


def test_an_existing_foreign_derivative_dataset_is_refused(dataset, capsys, tiny_weights):
    (dataset / DERIVATIVES).mkdir(parents=True)
    (dataset / DERIVATIVES / "dataset_description.json").write_text(json.dumps({"Name": "x", "BIDSVersion": "1.10.0"}))
    code, _, stderr = batch(capsys, dataset, tiny_weights)
    assert code == 2 and "does not describe a medfuse derivative dataset" in stderr
    assert sorted(p.name for p in (dataset / DERIVATIVES).iterdir()) == ["dataset_description.json"]


def test_the_manifest_still_needs_a_and_b(dataset, capsys, tiny_weights):
    (dataset / "pairs.csv").write_text(f"a\n{T1_01}\n")
    code, _, stderr = batch(capsys, dataset, tiny_weights)
    assert code == 2 and "missing column(s) b (the header must name a, b and optionally window)" in stderr


def test_two_rows_with_one_a_are_refused_as_rows_with_one_output(dataset, capsys, tiny_weights):
    (dataset / "pairs.csv").write_text(f"a,b\n{T1_02},{T2_02}\n{T1_02},{T1_02}\n")
    code, _, stderr = batch(capsys, dataset, tiny_weights)
    assert code == 2 and "1 row(s) would lose work" in stderr and "as line 2 does" in stderr
    assert not (dataset / "raw" / "derivatives").exists()


def test_a_dataset_reached_through_a_symbolic_link_is_the_same_dataset(dataset, capsys, tiny_weights):
    (dataset / "link").symlink_to(dataset, target_is_directory=True)
    code, stdout, stderr = run_cli(
        capsys,
        "batch",
        dataset / "link" / "pairs.csv",
        "--bids-derivatives",
        dataset / "link" / "raw",
        "--weights",
        tiny_weights,
        "--rule",
        "average",
    )
    assert code == 0, stderr
    assert "2 fused" in stdout and (dataset / FUSED_01).is_file() and (dataset / FUSED_02).is_file()
    sources = json.loads(sidecar_path(dataset / FUSED_01).read_text())["Sources"]
    assert sources[0] == "bids:raw:sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz"
    assert json.loads(sidecar_path(dataset / FUSED_01).read_text())["MedfuseVersion"] == medfuse.__version__
