import csv
import math

import numpy as np
import pytest

from medfuse.cli import main
from medfuse.evaluation.benchmark import find_pairs, mean_ranks, method_identity
from medfuse.fusion.methods import create_method
from medfuse.io.images import ImageFileError, load_image, save_image


@pytest.fixture
def dataset(tmp_path, phantom):
    """Two 64 x 64 pairs: MRI (grey) and PET (colour), paired by name, plus one unpaired file."""
    root = tmp_path / "data"
    (root / "MRI").mkdir(parents=True)
    (root / "PET").mkdir()
    for index, name in enumerate(("p1", "p2")):
        mri = np.roll(phantom, 4 * index, axis=1)
        pet = np.zeros((*phantom.shape, 3), np.uint8)
        pet[16:48, 16:48, 0] = 200
        pet[20:44, 24:40, 1] = 120 + 40 * index
        save_image(root / "MRI" / f"{name}.png", mri)
        save_image(root / "PET" / f"{name}.png", pet)
    save_image(root / "MRI" / "lonely.png", phantom)
    return root


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_find_pairs_puts_mri_first_and_reports_unpaired(dataset):
    found = find_pairs(dataset)
    assert (found.modality_a, found.modality_b) == ("MRI", "PET")
    assert [name for name, _, _ in found.pairs] == ["p1", "p2"]
    assert [p.name for p in found.unpaired] == ["lonely.png"]
    swapped = find_pairs(dataset, "PET", "MRI")
    assert swapped.pairs[0][1].parent.name == "PET"


def test_find_pairs_refuses_other_layouts(tmp_path):
    (tmp_path / "one").mkdir()
    with pytest.raises(ImageFileError, match="expected two modality folders, found 1"):
        find_pairs(tmp_path)
    with pytest.raises(ImageFileError, match="no modality folder CT"):
        find_pairs(tmp_path, "one", "CT")


def test_mean_ranks_follow_each_metrics_direction_and_share_ties():
    means = {
        "x": {"psnr": 20.0, "ssim": 0.5, "nabf": 0.1},
        "y": {"psnr": 10.0, "ssim": 0.5, "nabf": 0.2},
        "z": {"psnr": math.nan, "ssim": 0.9, "nabf": 0.0},
    }
    ranks = mean_ranks(means, ["psnr", "ssim", "nabf"])
    # psnr: x 1, y 2, z (NaN) 3; ssim: z 1, x and y share 2.5; nabf (lower is better): z 1, x 2, y 3
    assert ranks == pytest.approx({"x": (1 + 2.5 + 2) / 3, "y": (2 + 2.5 + 3) / 3, "z": (3 + 1 + 1) / 3})


def test_benchmark_end_to_end_then_rerun_only_scores(dataset, tmp_path, capsys, tiny_weights):
    out = tmp_path / "out"
    arguments = [
        "benchmark",
        dataset,
        "-o",
        out,
        "--methods",
        "dran-average,pixel-max",
        "--metrics",
        "psnr,ssim",
        "--weights",
        tiny_weights,
        "--montage-pairs",
        "2",
    ]
    code, stdout, stderr = run_cli(capsys, *arguments)
    assert code == 0, stderr
    assert "lonely.png has no partner" in stderr
    for name in ("table.md", "scores.csv", "montage.png", "distributions.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    with open(out / "scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], r["pair"]) for r in rows] == [
        ("dran-average", "p1"),
        ("dran-average", "p2"),
        ("pixel-max", "p1"),
        ("pixel-max", "p2"),
    ]
    table = (out / "table.md").read_text()
    assert "| method | psnr | ssim | mean rank |" in table and table.count("| dran-average |") == 1
    assert "2 pairs MRI/PET, 2 methods" in stdout
    assert "Caution: ranked on 2 pairs only (fewer than 10)" in table and "Caution: ranked on 2 pairs" in stdout
    # every score in the CSV is the metric of the cached fused image against its sources
    from medfuse.evaluation.metrics import psnr

    fused = load_image(out / "fused/pixel-max/p2.png")
    assert fused.shape == (64, 64, 3)
    row = rows[3]
    assert float(row["psnr"]) == pytest.approx(
        psnr(fused, load_image(dataset / "MRI/p2.png"), load_image(dataset / "PET/p2.png"))
    )
    # a rerun reads the cache: a marked cached image changes the scores of that pair only
    save_image(out / "fused/pixel-max/p2.png", np.zeros_like(fused))
    code, _, _ = run_cli(capsys, *arguments)
    with open(out / "scores.csv") as handle:
        again = list(csv.DictReader(handle))
    assert again[:3] == rows[:3] and again[3]["psnr"] != row["psnr"]


def test_changed_weights_invalidate_the_cache(dataset, tmp_path, capsys, tiny_weights):
    import torch

    from medfuse.dran.models import create_model, save_weights

    out = tmp_path / "out"
    arguments = [
        "benchmark",
        dataset,
        "-o",
        out,
        "--methods",
        "dran-average",
        "--metrics",
        "psnr",
        "--montage-pairs",
        "0",
    ]
    assert run_cli(capsys, *arguments, "--weights", tiny_weights)[0] == 0
    first_note = (out / "fused/dran-average/method.json").read_text()
    first = load_image(out / "fused/dran-average/p1.png")
    torch.manual_seed(1)
    other = save_weights(create_model("dran", width=8), tmp_path / "other.safetensors", "dran", {"width": 8})
    assert run_cli(capsys, *arguments, "--weights", other)[0] == 0
    assert (out / "fused/dran-average/method.json").read_text() != first_note
    assert not np.array_equal(load_image(out / "fused/dran-average/p1.png"), first)


def test_external_method_is_scored_from_its_folder(dataset, tmp_path, capsys):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    for name in ("p1", "p2"):
        save_image(theirs / f"{name}.png", load_image(dataset / "MRI" / f"{name}.png"))
    out = tmp_path / "out"
    code, stdout, _ = run_cli(
        capsys,
        "benchmark",
        dataset,
        "-o",
        out,
        "--methods",
        "pixel-average",
        "--external",
        f"copy-mri={theirs}",
        "--metrics",
        "ssim",
        "--montage-pairs",
        "1",
    )
    assert code == 0 and "| copy-mri |" in stdout
    (theirs / "p2.png").unlink()
    code, _, stderr = run_cli(
        capsys,
        "benchmark",
        dataset,
        "-o",
        out,
        "--methods",
        "pixel-average",
        "--external",
        f"copy-mri={theirs}",
        "--metrics",
        "ssim",
    )
    assert code == 2 and "has no fused image for 1 pair(s), e.g. p2" in stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--methods", "dran-nope"], "unknown method(s) dran-nope"),
        (["--metrics", "psnr,nope"], "unknown metric(s) nope"),
        (["--external", "novalue"], "expected NAME=FOLDER"),
        (["--external", "gff=."], "the name gff is taken"),
        (["--a", "CT", "--b", "MRI"], "no modality folder CT"),
    ],
)
def test_user_mistakes_get_one_line_and_no_output(dataset, tmp_path, capsys, arguments, message):
    out = tmp_path / "out"
    code, _, stderr = run_cli(capsys, "benchmark", dataset, "-o", out, *arguments)
    assert code == 2 and message in stderr and stderr.count("\n") == 1
    assert not out.exists()


def test_method_identity_follows_the_code_and_the_weights(tmp_path):
    from medfuse.fusion.baselines import pixel_average, pixel_maximum

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"one")
    first = method_identity("x", pixel_average, weights)
    assert first == method_identity("x", pixel_average, weights)
    assert first != method_identity("x", pixel_maximum, weights)
    weights.write_bytes(b"two")
    assert first != method_identity("x", pixel_average, weights)


def test_method_identity_of_a_source_weighting_is_its_weight_function():
    from medfuse.dran.rules import SourceWeighting, get_rule, sfnn_spatial_weights, sfnn_weights

    identity = method_identity("x", get_rule("sfnn-map"))
    assert identity == method_identity("x", SourceWeighting(sfnn_spatial_weights))  # no object address in it
    assert identity != method_identity("x", SourceWeighting(sfnn_weights))


def test_method_identity_of_a_source_fusion_follows_its_weights_and_its_blend():
    from medfuse.dran.rules import SourceFusion, base_weights, pyramid_blend, sfnn_spatial_weights

    identity = method_identity("x", SourceFusion(base_weights, pyramid_blend))
    assert identity == method_identity("x", SourceFusion(base_weights, pyramid_blend))
    assert identity != method_identity("x", SourceFusion(sfnn_spatial_weights, pyramid_blend))
    assert identity != method_identity("x", SourceFusion(base_weights, lambda a, b, w: w * a + (1 - w) * b))


def test_cache_follows_the_sources_not_just_the_names(dataset, tmp_path, capsys, phantom):
    out = tmp_path / "out"
    arguments = [
        "benchmark",
        dataset,
        "-o",
        out,
        "--methods",
        "pixel-average",
        "--metrics",
        "psnr",
        "--montage-pairs",
        "0",
    ]
    assert run_cli(capsys, *arguments)[0] == 0
    before = load_image(out / "fused/pixel-average/p1.png")
    save_image(dataset / "MRI" / "p1.png", 255 - phantom)  # same name, other image
    assert run_cli(capsys, *arguments)[0] == 0
    after = load_image(out / "fused/pixel-average/p1.png")
    assert not np.array_equal(before, after)
    expected = create_method("pixel-average")(255 - phantom, load_image(dataset / "PET" / "p1.png"))
    assert np.array_equal(after, expected)
    # a corrupt note is no crash: everything is fused again
    (out / "fused/pixel-average/method.json").write_text("{bad")
    assert run_cli(capsys, *arguments)[0] == 0


@pytest.mark.parametrize("problem", ["sources", "external"])
def test_images_of_other_sizes_are_refused_before_anything_is_written(dataset, tmp_path, capsys, problem):
    arguments = []
    if problem == "sources":
        save_image(dataset / "PET" / "p2.png", np.zeros((40, 64, 3), np.uint8))
    else:
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        for name in ("p1", "p2"):
            save_image(theirs / f"{name}.png", np.zeros((20, 20), np.uint8))
        arguments = ["--external", f"theirs={theirs}"]
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        capsys, "benchmark", dataset, "-o", out, "--methods", "pixel-max", "--metrics", "psnr", *arguments
    )
    assert code == 2 and "every image of a pair must have one size" in stderr
    assert not out.exists()


def test_same_modality_twice_and_unwritable_output_are_user_errors(dataset, tmp_path, capsys):
    code, _, stderr = run_cli(capsys, "benchmark", dataset, "-o", tmp_path / "o", "--a", "MRI", "--b", "MRI")
    assert code == 2 and "--a and --b both name MRI" in stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, stderr = run_cli(
        capsys, "benchmark", dataset, "-o", blocker / "sub", "--methods", "pixel-max", "--metrics", "psnr"
    )
    assert code == 2 and "file is a file, not a folder" in stderr and "Traceback" not in stderr
    code, _, stderr = run_cli(
        capsys, "benchmark", dataset, "-o", tmp_path / "missing" / "out", "--methods", "pixel-max", "--metrics", "psnr"
    )  # issue 22: one rule, the output's folder must exist
    assert code == 2 and "missing does not exist" in stderr and not (tmp_path / "missing").exists()
