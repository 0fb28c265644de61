"""The import contract: one package per layer, imports only downward, no cycles, the core
free of files, formats, clusters and the command line, metrics free of torch, and the fast
paths (help, reading a volume) free of heavy libraries. Read from the source with ``ast``
(every import, also those inside functions and ``lazy_module("...")`` stand-ins)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "medfuse"

LAYERS = [
    "_shared",
    "image",
    "dran",
    "fusion",
    "io",
    "evaluation",
    "clinical",
    "training",
    "scaleout",
    "integrations",
    "cli",
]
"""From the ground up; a module may import its own layer and those before it."""

CORE = LAYERS[:4]
FILES_FORMATS_CLUSTERS = (
    "medfuse.io",
    "medfuse.clinical",
    "medfuse.scaleout",
    "medfuse.cli",
    "medfuse.training",
    "PIL",
    "tifffile",
    "png",
    "nibabel",
    "pydicom",
    "SimpleITK",
    "dask",
    "distributed",
)
HEAVY = (
    "torch",
    "SimpleITK",
    "pydicom",
    "nibabel",
    "dask",
    "distributed",
    "scipy.signal",
    "pywt",
    "safetensors",
    "onnx",
    "onnxruntime",
    "onnxscript",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it, by full dotted name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "lazy_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(node.args[0].value)
    return found


MODULES = {module_name(path): imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer(name: str) -> int | None:
    """The layer of a medfuse module (None for the package's own ``__init__``/``__main__``)."""
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def medfuse_imports(name: str) -> set[str]:
    """The medfuse modules ``name`` imports (names of functions and classes cut off)."""
    return {target for target in (resolve(candidate) for candidate in MODULES[name]) if target}


def resolve(imported: str) -> str | None:
    while imported and imported not in MODULES:
        imported = imported.rpartition(".")[0]
    return imported or None


def violations() -> list[str]:
    found = []
    for name in MODULES:
        own = layer(name)
        for target in medfuse_imports(name):
            other = layer(target)
            if own is not None and other is not None and other > own:
                found.append(f"{name} (layer {LAYERS[own]}) imports {target} (layer {LAYERS[other]}): upward")
        if own is not None and LAYERS[own] in CORE:
            found += [
                f"{name} (core) imports {target}"
                for target in MODULES[name]
                if any(is_within(target, banned) for banned in FILES_FORMATS_CLUSTERS)
            ]
        if is_within(name, "medfuse.evaluation.metrics"):
            found += [
                f"{name} imports {target}"
                for target in MODULES[name]
                if any(is_within(target, banned) for banned in ("torch", "medfuse.dran", "medfuse.training"))
            ]
        if name == "medfuse.fusion.baselines":  # the twin may share sfnn-pyramid's blend, never the network
            found += [
                f"{name} imports {target}"
                for target in MODULES[name]
                if any(
                    is_within(target, banned)
                    for banned in (
                        "medfuse.dran.network",
                        "medfuse.dran.models",
                        "medfuse.dran.fusion_head",
                        "medfuse.training",
                    )
                )
            ]
    return found


def test_nothing_imports_upward_and_the_core_stays_pure():
    assert violations() == []


def test_there_are_no_import_cycles():
    graph = {name: medfuse_imports(name) - {name} for name in MODULES}
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                return path + [name, target]
            if target not in state:
                cycle = visit(target, path + [name])
                if cycle:
                    return cycle
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state:
            assert visit(name, []) is None


def test_the_contract_sees_a_core_module_importing_the_command_line(monkeypatch):
    monkeypatch.setitem(MODULES, "medfuse.dran.rules", MODULES["medfuse.dran.rules"] | {"medfuse.cli.common"})
    assert any("medfuse.dran.rules (layer dran) imports medfuse.cli.common" in line for line in violations())


def loaded_after(code: str) -> set[str]:
    """The modules (among HEAVY) that running ``code`` in a fresh interpreter leaves imported."""
    probe = f"import sys\n{code}\nprint(','.join(sorted(set(sys.modules))))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(result.stdout.strip().splitlines()[-1].split(","))
    return {name for name in HEAVY if name in loaded}


@pytest.mark.parametrize(
    "command", ["", "fuse", "register", "train", "evaluate", "benchmark", "batch", "report", "export-onnx"]
)
def test_help_imports_no_heavy_library(command):
    code = (
        "from medfuse.cli import main\ntry:\n    main(["
        + (f"{command!r}, " if command else "")
        + "'--help'])\nexcept SystemExit:\n    pass"
    )
    assert loaded_after(code) == set()


def test_reading_and_writing_a_volume_imports_no_torch(tmp_path):
    code = (
        f"import numpy as np\nfrom medfuse.io.volumes import read_volume, write_volume\n"
        f"from medfuse.image.grid import Geometry\nfrom medfuse.io.volumes import write_nifti\n"
        f"write_nifti({str(tmp_path / 'a.nii')!r}, np.ones((4, 4, 3), np.float32), Geometry(np.eye(4)))\n"
        f"volume = read_volume({str(tmp_path / 'a.nii')!r})\n"
        f"write_volume({str(tmp_path / 'b.nii.gz')!r}, volume.volume.data, volume)"
    )
    loaded = loaded_after(code)
    assert "torch" not in loaded and (tmp_path / "b.nii.gz").is_file()
