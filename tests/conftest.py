from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

import medfuse
from medfuse.dran.models import save_weights
from medfuse.io.images import save_image

SAMPLES = Path(medfuse.__file__).parent / "samples"
torch.set_num_threads(1)  # small tensors: one thread is fastest and the results are the same on every machine


@pytest.fixture(scope="session")
def phantom() -> np.ndarray:
    """A 64 x 64 Shepp-Logan phantom, uint8."""
    return np.round(resize(shepp_logan_phantom(), (64, 64), anti_aliasing=True) * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_model() -> torch.nn.Module:
    """An untrained, seeded DRAN of width 8 with an (untrained) fusion head of 4 channels, as the
    shipped default has one: fast, deterministic."""
    torch.manual_seed(0)
    return medfuse.create_model("dran", width=8, fusion_head=4).eval().requires_grad_(False)


@pytest.fixture(scope="session")
def tiny_weights(tiny_model, tmp_path_factory) -> Path:
    return save_weights(
        tiny_model, tmp_path_factory.mktemp("weights") / "tiny.safetensors", "dran", {"width": 8, "fusion_head": 4}
    )


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture
def noise_images(tmp_path) -> Path:
    """A folder of six 32 x 32 grey noise images: enough to train a tiny model for a few steps."""
    folder = tmp_path / "noise_images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):
        save_image(folder / f"{index}.png", rng.integers(0, 256, (32, 32)).astype(np.uint8))
    return folder


def pytest_terminal_summary(terminalreporter) -> None:
    """Say how many browser tests (``pytest.mark.browser``) ran and why the others were skipped."""
    reports = [
        report
        for kind in ("passed", "failed", "skipped")
        for report in terminalreporter.stats.get(kind, [])
        if "browser" in getattr(report, "keywords", {}) and report.when in ("call", "setup")
    ]
    if not reports:
        return
    ran = sum(report.when == "call" and not report.skipped for report in reports)
    skipped = [report for report in reports if report.skipped]
    line = f"browser tests (headless Chromium): {ran} ran, {len(skipped)} skipped"
    if skipped:
        line += f" ({skipped[0].longrepr[2]})"
    terminalreporter.write_line(line)
