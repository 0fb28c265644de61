import math

import numpy as np
import pytest
import torch

from medfuse._shared.files import current_umask
from medfuse.dran.models import create_model, list_models, load_model, save_weights, weights_metadata
from medfuse.image.scales import grey_unit
from medfuse.io.images import load_image


def test_shipped_model_reconstructs_bundled_test_images(samples):
    """The shipped autoencoder rebuilds test-split images it never saw at over 32 dB."""
    model = load_model("dran-havard")
    assert not model.training
    for path in (samples / "CT-MRI/CT/41010.png", samples / "PET-MRI/PET/25015.png"):
        image = torch.from_numpy(grey_unit(load_image(path))).float()[None, None]
        with torch.no_grad():
            mse = torch.mean((model(image).clamp(0, 1) - image) ** 2).item()
        assert 10 * math.log10(1 / mse) > 32


def test_weights_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_model("dran", width=6)
    path = save_weights(model, tmp_path / "m.safetensors", "dran", {"width": 6}, {"steps": "7"})
    assert weights_metadata(path)["steps"] == "7"
    assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # readable by others as any file, not 0600
    loaded = load_model(path)
    image = torch.rand(1, 1, 10, 12)
    torch.testing.assert_close(loaded(image), model.eval()(image))


def test_load_errors(tmp_path):
    assert "dran-havard" in list_models()
    with pytest.raises(FileNotFoundError, match="no model"):
        load_model(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a safetensors"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match="unknown architecture"):
        create_model("unet")


def test_grey_unit_reduces_colour_to_luminance():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255
    np.testing.assert_allclose(grey_unit(rgb), 0.299)
