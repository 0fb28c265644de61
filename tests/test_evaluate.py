import csv
import json
import math
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

from medfuse import metrics
from medfuse.cli import main
from medfuse.evaluation.scoring import evaluate_files, match_folders, write_json
from medfuse.io.images import load_image, save_image


@pytest.fixture
def folders(tmp_path, samples):
    """Fused / MRI / PET folders: two good triples, one fused image without sources, one
    unreadable fused image, one of the wrong size and one source pair without a fused image."""
    fused, mri, pet = (tmp_path / name for name in ("fused", "mri", "pet"))
    shutil.copytree(samples / "PET-MRI" / "MRI", mri)
    shutil.copytree(samples / "PET-MRI" / "PET", pet)
    fused.mkdir()
    for name in ("25015", "25022"):
        average = load_image(mri / f"{name}.png")[..., None] * 0.5 + load_image(pet / f"{name}.png") * 0.5
        save_image(fused / f"{name}.png", np.round(average).astype(np.uint8))
    save_image(fused / "lonely.png", np.zeros((256, 256), np.uint8))
    (fused / "broken.png").write_bytes(b"no image")
    for folder in (mri, pet):
        shutil.copy(folder / "25015.png", folder / "broken.png")
        save_image(folder / "small.png", np.zeros((10, 10), np.uint8))
    save_image(fused / "small.png", np.zeros((12, 12), np.uint8))
    for folder in (mri, pet):
        shutil.copy(folder / "25015.png", folder / "unfused.png")
    return fused, mri, pet


def test_folders_scores_and_problems_by_name(folders):
    triples, problems = match_folders(*folders)
    assert [t[0] for t in triples] == ["25015", "25022", "broken", "small"]
    assert any("lonely.png" in p for p in problems)
    assert [p for p in problems if "unfused.png" in p] == [
        f"{folder / 'unfused.png'}: no fused image of the same name in {folders[0]}" for folder in folders[1:]
    ]
    evaluation = evaluate_files(triples, ["ssim", "en"])
    assert sorted(evaluation.scores) == ["25015", "25022"]
    assert any("broken.png" in p for p in evaluation.problems)
    assert any(p.startswith("small: sizes differ") for p in evaluation.problems)
    fused = load_image(folders[0] / "25015.png")
    expected = metrics.ssim(fused, load_image(folders[1] / "25015.png"), load_image(folders[2] / "25015.png"))
    assert evaluation.scores["25015"]["ssim"] == expected
    summary = evaluation.summary()["ssim"]
    values = [evaluation.scores[n]["ssim"] for n in ("25015", "25022")]
    assert summary["mean"] == pytest.approx(np.mean(values)) and summary["std"] == pytest.approx(np.std(values))


def test_cli_folders_write_csv_and_json(folders, tmp_path, capsys):
    out_csv, out_json = tmp_path / "scores.csv", tmp_path / "scores.json"
    code = main(
        ["evaluate", *map(str, folders), "--metrics", "ssim,psnr,en", "--csv", str(out_csv), "--json", str(out_json)]
    )
    captured = capsys.readouterr()
    assert code == 1  # broken.png and small could not be scored; the others were (issue 21: not exit 0)
    assert "2 image(s) could not be scored" in captured.err
    assert "lonely.png" in captured.err and "broken.png" in captured.err and "small" in captured.err
    assert "ssim" in captured.out and "(2 images)" in captured.out
    rows = list(csv.reader(out_csv.open()))
    assert rows[0] == ["image", "ssim", "psnr", "en"]
    assert [r[0] for r in rows[1:]] == ["25015", "25022"]  # issue 22: every row is an image, the summary apart
    summary = list(csv.reader((tmp_path / "scores.summary.csv").open()))
    assert summary[0] == ["metric", "mean", "std", "infinite"] and [r[0] for r in summary[1:]] == ["ssim", "psnr", "en"]
    assert float(summary[2][1]) == pytest.approx(np.mean([float(r[2]) for r in rows[1:3]]))
    payload = json.loads(out_json.read_text())
    assert payload["summary"]["psnr"]["mean"] == pytest.approx(np.mean([float(r[2]) for r in rows[1:3]]))
    assert len(payload["problems"]) == 5


def test_cli_single_triple(samples, capsys):
    mri, ct = samples / "CT-MRI/MRI/41010.png", samples / "CT-MRI/CT/41010.png"
    code = main(["evaluate", str(ct), str(mri), str(ct), "--metrics", "ssim,fmi"])
    out = capsys.readouterr().out
    assert code == 0 and "(1 image)" in out and "fmi" in out


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--metrics", "ssim,nope"], "unknown metric(s) nope"),
        (["--csv", "/no/such/folder/x.csv"], "does not exist"),
    ],
)
def test_cli_bad_options(samples, capsys, arguments, message):
    image = str(samples / "CT-MRI/MRI/41010.png")
    code = main(["evaluate", image, image, image, *arguments])
    assert code == 2 and message in capsys.readouterr().err


def test_cli_missing_and_mixed_inputs(samples, tmp_path, capsys):
    image = str(samples / "CT-MRI/MRI/41010.png")
    assert main(["evaluate", str(tmp_path / "none.png"), image, image]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), image, image]) == 2
    assert "three files or three folders" in capsys.readouterr().err
    small = tmp_path / "small.png"
    save_image(small, np.zeros((5, 5), np.uint8))
    assert main(["evaluate", str(small), image, image]) == 2
    assert "sizes differ" in capsys.readouterr().err


def test_cli_single_unreadable_is_one_line(samples, tmp_path, capsys):
    (tmp_path / "bad.png").write_text("not an image")
    image = str(samples / "CT-MRI/MRI/41010.png")
    assert main(["evaluate", str(tmp_path / "bad.png"), image, image]) == 2
    err = capsys.readouterr().err
    assert "bad.png: not a readable image" in err and err.count("\n") == 1


def test_an_unscorable_triple_is_reported_and_the_rest_scored(samples, tmp_path):
    """A 2 x 2 image is too small for FMI's 3 x 3 window: reported by name, not a crash."""
    tiny = tmp_path / "tiny.png"
    save_image(tiny, np.zeros((2, 2), np.uint8))
    good = samples / "CT-MRI/CT/41010.png", samples / "CT-MRI/MRI/41010.png"
    evaluation = evaluate_files([("tiny", tiny, tiny, tiny), ("good", good[0], *good)], ["fmi"])
    assert list(evaluation.scores) == ["good"]
    assert evaluation.problems == ["tiny: cannot be scored (images of (2, 2) are smaller than the 3 x 3 window)"]


def test_json_is_standard_when_psnr_is_infinite(samples, tmp_path):
    """Fused equal to both sources: PSNR is +inf, written as null (JSON has no Infinity)."""
    image = samples / "CT-MRI/MRI/41010.png"
    evaluation = evaluate_files([("same", image, image, image)], ["psnr", "ssim"])
    assert evaluation.scores["same"]["psnr"] == math.inf
    write_json(evaluation, tmp_path / "scores.json")

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    payload = json.loads((tmp_path / "scores.json").read_text(), parse_constant=refuse)
    assert payload["images"]["same"] == {"psnr": None, "ssim": 1.0}
    assert payload["summary"]["psnr"] == {"mean": None, "std": None, "infinite": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]


def test_cli_outputs_may_not_overwrite_inputs(samples, tmp_path, capsys):
    pet = tmp_path / "pet.png"
    shutil.copy(samples / "PET-MRI/PET/25015.png", pet)
    before = pet.read_bytes()
    mri = str(samples / "PET-MRI/MRI/25015.png")
    assert main(["evaluate", mri, mri, str(pet), "--csv", str(pet)]) == 2
    assert "is one of the inputs" in capsys.readouterr().err and pet.read_bytes() == before
    assert main(["evaluate", mri, mri, str(pet), "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_cli_warnings_are_one_line(samples, capsys, monkeypatch):
    import medfuse.evaluation.scoring

    real_evaluate_files = medfuse.evaluation.scoring.evaluate_files

    def warning_evaluate_files(*args, **kwargs):
        warnings.warn("a library's warning\nover two lines", UserWarning, stacklevel=2)
        return real_evaluate_files(*args, **kwargs)

    monkeypatch.setattr(medfuse.evaluation.scoring, "evaluate_files", warning_evaluate_files)
    mri, ct = samples / "CT-MRI/MRI/41010.png", samples / "CT-MRI/CT/41010.png"
    assert main(["evaluate", str(ct), str(mri), str(ct), "--metrics", "ssim"]) == 0
    assert capsys.readouterr().err == "medfuse evaluate: warning: a library's warning over two lines\n"


def test_an_infinite_psnr_is_reported_but_does_not_poison_the_mean(samples, tmp_path, capsys):
    mri, ct = samples / "CT-MRI/MRI/41010.png", tmp_path / "ct.png"
    image = np.asarray(Image.open(samples / "CT-MRI/CT/41010.png").convert("L")).copy()
    image[::7] //= 2
    Image.fromarray(image).save(ct)
    evaluation = evaluate_files([("copy", mri, mri, mri), ("real", ct, mri, samples / "CT-MRI/CT/41010.png")], ["psnr"])
    assert evaluation.scores["copy"]["psnr"] == math.inf and math.isfinite(evaluation.scores["real"]["psnr"])
    assert evaluation.summary()["psnr"] == {"mean": evaluation.scores["real"]["psnr"], "std": 0.0, "infinite": 1}
    folders = [tmp_path / name for name in ("fused", "a", "b")]
    for folder, sources in zip(folders, ((mri, ct), (mri, mri), (mri, samples / "CT-MRI/CT/41010.png"))):
        folder.mkdir()
        for name, source in zip(("copy", "real"), sources):
            (folder / f"{name}.png").write_bytes(source.read_bytes())
    assert main(["evaluate", *map(str, folders), "--metrics", "psnr"]) == 0
    assert "(1 infinite, left out of mean and std)" in capsys.readouterr().out
