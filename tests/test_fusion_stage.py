"""Stage 2, the trained fusion stage: its head, its blend, its losses, its training and the shipped model."""

import json

import numpy as np
import pytest
import torch

import medfuse
from medfuse.dran.fusion_head import (
    GAIN_MAX,
    GAIN_MIN,
    GAINS,
    INITIAL_BASE_GAIN,
    INITIAL_LIFT,
    LEVELS,
    MAP_COUNT,
    PyramidWeightHead,
    blend_pyramids,
)
from medfuse.dran.models import load_model, save_weights
from medfuse.dran.pyramid import collapse_pyramid, laplacian_pyramid
from medfuse.io.images import save_image
from medfuse.training.config import FusionTrainConfig
from medfuse.training.fusion import (
    LESION_KINDS,
    FusionLoss,
    brighter_intensity_loss,
    lesion_profile,
    plant_lesions,
    range_loss,
    ssim_map,
    stronger_gradient_loss,
    transfer_loss,
)
from medfuse.training.loop import train


def smooth_images(seed: int, count: int = 2, side: int = 48) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand((count, 1, side // 4, side // 4), generator=generator)
    return torch.nn.functional.interpolate(noise, size=(side, side), mode="bilinear", align_corners=False)


def constant_maps(
    like: torch.Tensor, w_a: float, base_gain: float, gain_a: float, gain_b: float, lift: float = 0.0
) -> torch.Tensor:
    n, _, h, w = like.shape
    values = [w_a, base_gain, lift] + [gain_a] * LEVELS + [gain_b] * LEVELS
    return torch.tensor(values, dtype=like.dtype).view(1, MAP_COUNT, 1, 1).expand(n, MAP_COUNT, h, w)


def test_blend_with_all_of_one_source_gives_that_source():
    a, b = smooth_images(0), smooth_images(1)
    torch.testing.assert_close(blend_pyramids(a, b, constant_maps(a, 1.0, 1.0, 1.0, 0.0)), a)
    torch.testing.assert_close(blend_pyramids(a, b, constant_maps(a, 0.0, 1.0, 0.0, 1.0)), b)


def test_blend_adds_both_details_and_mixes_lifts_and_scales_the_bases():
    a, b = smooth_images(2), smooth_images(3)
    pyramid_a, pyramid_b = laplacian_pyramid(a, LEVELS), laplacian_pyramid(b, LEVELS)
    expected = collapse_pyramid(
        [da + db for da, db in zip(pyramid_a[:-1], pyramid_b[:-1])]
        + [0.5 * (0.3 * pyramid_a[-1] + 0.7 * pyramid_b[-1]) + 0.1]
    )
    torch.testing.assert_close(blend_pyramids(a, b, constant_maps(a, 0.3, 0.5, 1.0, 1.0, lift=0.1)), expected)


def test_blend_takes_odd_and_small_sizes():
    for side in (2, 5, 37):
        a = torch.rand(1, 1, side, side + 1)
        assert blend_pyramids(a, a, constant_maps(a, 0.5, 1.0, 0.5, 0.5)).shape == a.shape


def test_an_untrained_head_keeps_every_detail_and_halves_the_base():
    torch.manual_seed(0)
    head = PyramidWeightHead(width=8, hidden=4)
    features = torch.randn(2, 8, 10, 12), torch.randn(2, 8, 10, 12)
    maps = head(*features)
    assert maps.shape == (2, MAP_COUNT, 10, 12)
    torch.testing.assert_close(maps, constant_maps(maps, 0.5, INITIAL_BASE_GAIN, 1.0, 1.0, lift=INITIAL_LIFT))


def test_the_head_is_symmetric_in_its_sources():
    torch.manual_seed(1)
    head = PyramidWeightHead(width=8, hidden=4)
    for parameter in head.parameters():  # away from the initial constants
        torch.nn.init.normal_(parameter, std=0.5)
    features_a, features_b = torch.randn(1, 8, 9, 9), torch.randn(1, 8, 9, 9)
    forward, swapped = head(features_a, features_b), head(features_b, features_a)
    torch.testing.assert_close(forward[:, 0], 1 - swapped[:, 0])
    torch.testing.assert_close(forward[:, 1:GAINS], swapped[:, 1:GAINS])
    torch.testing.assert_close(forward[:, GAINS : GAINS + LEVELS], swapped[:, GAINS + LEVELS :])
    gains = forward[:, GAINS:].view(1, 2, LEVELS, 9, 9)
    assert 0 < gains[:, :, 0].min() and gains.max() < GAIN_MAX
    assert gains[:, :, 1:].min() > GAIN_MIN  # no detail of lesion scale is dropped
    assert forward[:, 0].std() > 0.01  # the maps vary with the features


def test_transfer_loss_is_zero_for_a_kept_lesion_and_one_for_a_lost_one():
    fused = smooth_images(4)
    change = torch.zeros_like(fused)
    change[:, :, 10:20, 10:20] = 0.3
    assert transfer_loss(fused, fused + change, change).item() == pytest.approx(0.0, abs=1e-9)
    assert transfer_loss(fused, fused, change).item() == pytest.approx(1.0)
    assert transfer_loss(fused, fused + change / 2, change).item() == pytest.approx(0.25)


def test_stronger_gradient_loss_is_zero_for_the_source_with_the_edges():
    a = torch.zeros(1, 1, 16, 16)
    a[..., 8:] = 1.0
    b = torch.zeros_like(a)
    assert stronger_gradient_loss(a, a, b).item() == pytest.approx(0.0)
    assert stronger_gradient_loss(b, a, b).item() > 0.1


def test_brighter_intensity_loss_follows_the_brighter_source_at_a_coarse_scale():
    a, b = torch.full((1, 1, 32, 32), 0.8), torch.full((1, 1, 32, 32), 0.2)
    a[..., 16:], b[..., 16:] = 0.1, 0.6
    brighter = torch.maximum(a, b)
    assert brighter_intensity_loss(brighter, a, b).item() < 0.05  # the two blurs differ at the border only
    assert brighter_intensity_loss((a + b) / 2, a, b).item() > 0.15


def test_range_loss_counts_only_what_leaves_zero_to_one():
    inside = torch.linspace(0, 1, 100).view(1, 1, 10, 10)
    assert range_loss(inside).item() == 0.0
    assert range_loss(inside + 0.5).item() == pytest.approx((inside - 0.5).clamp_min(0).mean().item(), abs=1e-6)
    assert range_loss(inside - 2).item() == pytest.approx((2 - inside).mean().item(), abs=1e-6)


def test_ssim_map_is_one_for_equal_images_and_less_for_others():
    a, b = smooth_images(5), smooth_images(6)
    assert ssim_map(a, a).mean().item() == pytest.approx(1.0)
    assert ssim_map(a, b).mean().item() < 0.9


@pytest.mark.parametrize("kind", LESION_KINDS)
def test_each_lesion_kind_peaks_near_one_at_its_place(kind):
    profile = lesion_profile(kind, (64, 64), (30.0, 34.0), 6.0, np.random.default_rng(0))
    assert profile.abs().max().item() == pytest.approx(1.0, abs=0.1)
    assert profile[:5, :5].abs().max().item() < 0.05  # far from the centre: nothing


def test_planted_lesions_change_the_tissue_and_stay_in_range():
    images = torch.zeros(3, 1, 48, 48)
    images[:, :, 12:36, 12:36] = 0.5
    planted = plant_lesions(images, np.random.default_rng(0), count=2)
    assert planted.min() >= 0 and planted.max() <= 1
    change = (planted - images).abs()
    for index in range(3):
        assert change[index].max() > 0.05
        row, column = np.unravel_index(int(change[index, 0].argmax()), (48, 48))
        assert 12 <= row < 36 and 12 <= column < 36  # the strongest change lies in the tissue


@pytest.fixture(scope="module")
def pair_folder(tmp_path_factory):
    """Six registered synthetic pairs: a soft disc (MRI) and a bright ring (CT)."""
    root = tmp_path_factory.mktemp("pairs")
    yy, xx = np.mgrid[:40, :40]
    for modality in ("MRI", "CT"):
        (root / modality).mkdir()
    for index in range(6):
        radius = (yy - 20 - index % 3) ** 2 + (xx - 20) ** 2
        save_image(root / "MRI" / f"{index}.png", ((radius < 200) * (120 + 10 * index)).astype(np.uint8))
        save_image(root / "CT" / f"{index}.png", (((radius < 200) & (radius > 120)) * 250).astype(np.uint8))
    return root


def fusion_config(pair_folder, tiny_weights, out, **changes) -> FusionTrainConfig:
    settings = dict(
        data=[str(pair_folder)],
        out=str(out),
        init=str(tiny_weights),
        steps=4,
        batch_size=2,
        crop=32,
        val_every=2,
        val_fraction=0.34,
        fusion_head=4,
        val_crops=2,
        seed=0,
    )
    settings.update(changes)
    return FusionTrainConfig(**settings)


def test_fusion_training_writes_a_model_with_its_head_and_resumes_exactly(pair_folder, tiny_weights, tmp_path):
    last = train(fusion_config(pair_folder, tiny_weights, tmp_path / "straight"), progress=False)
    assert last["step"] == 4 and {"val_transfer", "val_structure", "val_range"} <= last.keys()
    log = json.loads((tmp_path / "straight" / "log.json").read_text())
    assert log["train_pairs"] + log["val_pairs"] == 6
    model = load_model(tmp_path / "straight" / "weights.safetensors")
    assert isinstance(model.fusion_head, PyramidWeightHead)
    initial = load_model(tiny_weights)
    for name, value in initial.encoder.state_dict().items():  # the encoder stays frozen
        torch.testing.assert_close(model.encoder.state_dict()[name], value)

    train(fusion_config(pair_folder, tiny_weights, tmp_path / "split", steps=2), progress=False)
    train(fusion_config(pair_folder, tiny_weights, tmp_path / "split", resume=True), progress=False)
    resumed = load_model(tmp_path / "split" / "weights.safetensors")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value)


def test_fusion_training_lowers_its_loss(pair_folder, tiny_weights, tmp_path):
    log = train(fusion_config(pair_folder, tiny_weights, tmp_path, steps=30, val_every=15, lr=5e-3), progress=False)
    records = json.loads((tmp_path / "log.json").read_text())["log"]
    assert records[-1]["val_loss"] < records[0]["val_loss"] or log["train_loss"] < records[0]["train_loss"]


def test_fusion_training_needs_a_stage_one_model(pair_folder, tmp_path):
    from medfuse._shared.errors import InputError

    with pytest.raises(InputError, match="stage-1 model"):
        FusionTrainConfig(data=[str(pair_folder)], out=str(tmp_path), init=None).validate()


def test_the_trained_rule_says_when_a_model_has_no_fusion_stage(phantom):
    from medfuse._shared.errors import InputError

    stage_one = medfuse.create_model("dran", width=8).eval()
    with pytest.raises(InputError, match="no trained fusion stage"):
        medfuse.fuse(phantom, phantom, rule="trained-pyramid", model=stage_one)


def test_train_fusion_command_trains(pair_folder, tiny_weights, tmp_path, capsys):
    from medfuse.cli import main

    code = main(
        [
            "train-fusion",
            str(pair_folder),
            "-o",
            str(tmp_path / "run"),
            "--init",
            str(tiny_weights),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--crop",
            "32",
            "--val-every",
            "2",
            "--fusion-head",
            "4",
            "--val-crops",
            "2",
            "--val-fraction",
            "0.34",
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "training on 4 pairs, validating on 2" in printed and "weights:" in printed
    assert (tmp_path / "run" / "weights.safetensors").is_file()


def test_a_saved_model_with_a_head_loads_with_it(tmp_path):
    model = medfuse.create_model("dran", width=8, fusion_head=4)
    path = save_weights(model, tmp_path / "with-head.safetensors", "dran", {"width": 8, "fusion_head": 4})
    assert load_model(path).fusion_head.reduce.out_channels == 4


def test_the_default_runs_no_network_and_is_the_twin(phantom, tiny_model, monkeypatch):
    """The default rule needs no network (issue 31: no DRAN fusion beat it on lesions and metrics
    together): it never calls the encoder, and it gives the ``pyramid-energy`` baseline's image."""
    from medfuse.fusion.baselines import BASELINES

    assert medfuse.DEFAULT_RULE == "pyramid-energy"

    def no_network(image):
        raise AssertionError("the encoder ran")

    monkeypatch.setattr(tiny_model, "encode", no_network)
    other = np.ascontiguousarray(phantom[::-1] // 2)
    fused = medfuse.fuse(phantom, other, model=tiny_model)
    twin = np.round(np.clip(BASELINES["pyramid-energy"](phantom / 255.0, other / 255.0), 0, 1) * 255)
    assert np.abs(fused.astype(int) - twin.astype(int)).max() <= 1


@pytest.fixture(scope="module")
def shipped_pair(samples):
    from medfuse.image.scales import grey_unit
    from medfuse.io.images import load_image

    return (
        grey_unit(load_image(samples / "PET-MRI" / "MRI" / "25015.png")),
        grey_unit(load_image(samples / "PET-MRI" / "PET" / "25015.png")),
    )


def test_the_shipped_fusion_stage_decides_where_each_source_shows(shipped_pair):
    """The trained stage's maps vary over the image with the features (the network's part): the fusion
    differs from the same blend with the maps made flat (their means) or with an untrained head's, most
    where the sources differ; it keeps the sources' structure (SSIM to each above 0.5)."""
    from medfuse.dran.fusion_head import PyramidWeightHead
    from medfuse.dran.rules import trained_pyramid_blend
    from medfuse.training.fusion import ssim_map

    model = medfuse.load_model()
    a, b = (torch.from_numpy(image).float()[None, None] for image in shipped_pair)
    with torch.no_grad():
        features_a, features_b = model.encode(a), model.encode(b)
        maps = model.fusion_head(features_a, features_b)
        fused = trained_pyramid_blend(a, b, maps)
        flat = trained_pyramid_blend(a, b, maps.mean(dim=(2, 3), keepdim=True).expand_as(maps))
        untrained = trained_pyramid_blend(a, b, PyramidWeightHead(64)(features_a, features_b))
    assert maps[:, 0].std() > 0.05  # A's share of the brightness changes across the image
    for other in (flat, untrained):
        assert (fused - other).abs().mean() > 0.01 and (fused - other).abs().max() > 0.1
    assert min(ssim_map(fused, a).mean(), ssim_map(fused, b).mean()) > 0.5


def test_a_fusion_crop_too_small_for_the_loss_is_refused_before_anything(pair_folder, tiny_weights, tmp_path, capsys):
    from medfuse._shared.errors import InputError
    from medfuse.cli import main

    code = main(
        ["train-fusion", str(pair_folder), "-o", str(tmp_path / "run"), "--init", str(tiny_weights), "--crop", "5"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "crop must be at least 6 px" in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(InputError, match="crop must be at least 6 px"):
        train(fusion_config(pair_folder, tiny_weights, tmp_path / "five", crop=5), progress=False)
    train(
        fusion_config(pair_folder, tiny_weights, tmp_path / "six", crop=6, steps=1, val_every=1), progress=False
    )  # the real minimum
    loss = FusionLoss(load_model(tiny_weights))
    with pytest.raises(RuntimeError):  # one pixel less fails inside torch
        loss(torch.rand(1, 4, 5, 5))
