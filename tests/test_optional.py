"""Optional extras: a missing library is one line naming the pip install that brings it, from Python
and from the command line; every extra that the code names exists in pyproject.toml."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from volume_data import ct_hu, write_dicom_series

from medfuse._shared.errors import MedfuseError, MissingDependencyError
from medfuse._shared.optional import EXTRAS, import_optional, install_command, missing_message
from medfuse.cli import main

ROOT = Path(__file__).resolve().parents[1]
DICOM_LINE = 'pydicom is not installed; reading DICOM needs the [dicom] extra: pip install "medfuse[dicom]"'


def extras() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_every_named_extra_exists_and_all_brings_each():
    declared = extras()
    assert set(EXTRAS.values()) <= set(declared)
    (everything,) = declared["all"]
    assert everything == f"medfuse[{','.join(['dicom', 'registration', 'cluster', 'monai', 'onnx'])}]"
    assert set(EXTRAS.values()) <= set(everything[len("medfuse[") : -1].split(","))
    assert "medfuse[all]" in declared["test"]


def test_each_library_is_in_its_extra():
    declared = extras()
    for module, extra in EXTRAS.items():
        assert module.lower() in " ".join(declared[extra]).lower(), (module, extra)  # distributed: dask[distributed]


def test_the_message_names_the_library_the_work_and_the_install():
    assert install_command("dicom") == 'pip install "medfuse[dicom]"'
    assert missing_message("pydicom", "dicom", "reading DICOM") == DICOM_LINE
    assert missing_message("monai", "monai") == (
        'monai is not installed; it comes with the [monai] extra: pip install "medfuse[monai]"'
    )


@pytest.mark.parametrize("module", sorted(EXTRAS))
def test_a_missing_library_raises_one_line_as_a_medfuse_error(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: importing it fails
    with pytest.raises(MissingDependencyError) as caught:
        import_optional(module, purpose="this work")
    error = caught.value
    assert isinstance(error, MedfuseError) and isinstance(error, ImportError)
    assert str(error) == missing_message(module, EXTRAS[module], "this work")
    assert "\n" not in str(error)


def test_a_submodule_of_a_missing_library_names_the_library(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.delitem(sys.modules, "distributed.scheduler", raising=False)  # an earlier test may have imported it
    with pytest.raises(MissingDependencyError, match=r'^distributed is not installed; .*"medfuse\[cluster\]"$'):
        import_optional("distributed.scheduler")


def test_reading_a_dicom_series_without_pydicom(monkeypatch, tmp_path):
    from medfuse.io.volumes import read_volume

    folder = write_dicom_series(tmp_path / "ct", ct_hu())
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(MissingDependencyError) as caught:
        read_volume(folder)
    assert str(caught.value) == DICOM_LINE


def test_fusing_dicom_without_pydicom_on_the_command_line(monkeypatch, tmp_path, capsys):
    a = write_dicom_series(tmp_path / "ct", ct_hu())
    b = write_dicom_series(tmp_path / "mr", ct_hu(), modality="MR")
    monkeypatch.setitem(sys.modules, "pydicom", None)
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "fused.nii.gz")]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"medfuse fuse: error: {DICOM_LINE}\n"
    assert not (tmp_path / "fused.nii.gz").exists()


def test_writing_a_dicom_series_without_highdicom_is_refused_before_the_work(monkeypatch, tmp_path, capsys):
    a = write_dicom_series(tmp_path / "ct", ct_hu())
    b = write_dicom_series(tmp_path / "mr", ct_hu(), modality="MR")
    monkeypatch.setitem(sys.modules, "highdicom", None)
    import medfuse.fusion.volumes

    def no_fusion(*args, **kwargs):
        raise AssertionError("the fusion ran before the missing library was named")

    monkeypatch.setattr(medfuse.fusion.volumes, "fuse_volumes", no_fusion)
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "fused")]) == 2
    assert capsys.readouterr().err == (
        "medfuse fuse: error: highdicom is not installed; writing DICOM needs the "
        '[dicom] extra: pip install "medfuse[dicom]"\n'
    )
    assert not (tmp_path / "fused").exists()


def test_registering_without_simpleitk(monkeypatch, tmp_path, capsys, samples):
    monkeypatch.setitem(sys.modules, "SimpleITK", None)
    mri, ct = samples / "CT-MRI" / "MRI" / "41010.png", samples / "CT-MRI" / "CT" / "41010.png"
    assert main(["register", str(mri), str(ct), "-o", str(tmp_path / "ct_on_mri.png")]) == 2
    assert capsys.readouterr().err == (
        "medfuse register: error: SimpleITK is not installed; registration needs "
        'the [registration] extra: pip install "medfuse[registration]"\n'
    )
    assert list(tmp_path.iterdir()) == []


def test_a_dask_cluster_without_dask(monkeypatch):
    monkeypatch.delitem(sys.modules, "medfuse.scaleout.cluster", raising=False)
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.delitem(sys.modules, "distributed.scheduler", raising=False)  # an earlier test may have imported it
    with pytest.raises(
        MissingDependencyError,
        match=r"^distributed is not installed; a Dask cluster \(--workers, "
        r'--scheduler\) needs the \[cluster\] extra: pip install "medfuse\[cluster\]"$',
    ):
        importlib.import_module("medfuse.scaleout.cluster")


def test_the_installed_command_prints_one_line_without_pydicom(tmp_path):
    """The real entry point in a fresh interpreter, pydicom hidden as if never installed."""
    a = write_dicom_series(tmp_path / "ct", ct_hu())
    b = write_dicom_series(tmp_path / "mr", ct_hu(), modality="MR")
    code = (
        "import sys\nsys.modules['pydicom'] = None\nfrom medfuse.cli import main\n"
        f"sys.exit(main(['fuse', {str(a)!r}, {str(b)!r}, '-o', {str(tmp_path / 'f.nii.gz')!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"medfuse fuse: error: {DICOM_LINE}"]


def test_the_core_imports_no_optional_library():
    """`import medfuse` and reading a PNG need no extra (the extras are imported where they are used)."""
    code = (
        "import sys\nfor name in " + repr(sorted(EXTRAS)) + ":\n    sys.modules[name] = None\n"
        "import medfuse\nfrom medfuse.io.images import load_image\n"
        f"print(load_image({str(ROOT / 'src/medfuse/samples/CT-MRI/MRI/41010.png')!r}).shape)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert np.prod(eval(result.stdout)) > 0
