"""``medfuse report``: the pages' content and every refusal (the browser checks are in test_report_browser)."""

import json
import re

import numpy as np
import pytest
from volume_data import oblique_affine, phantom, write_nifti

from medfuse._shared.errors import InputError
from medfuse.cli import main
from medfuse.evaluation.report import MAX_VOLUME_SIDE, benchmark_report, pair_report, strip_plot, volume_report


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def embedded_images(page: str) -> int:
    return page.count('src="data:image/png;base64,')


def test_a_pair_report_embeds_sources_fusion_weight_map_and_differences(tmp_path, capsys, samples, tiny_weights):
    mri, ct = samples / "CT-MRI" / "MRI" / "41010.png", samples / "CT-MRI" / "CT" / "41010.png"
    code, out, err = run(
        capsys, "report", mri, ct, "-o", tmp_path / "r.html", "--weights", tiny_weights, "--metrics", "psnr,nabf"
    )
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    assert embedded_images(page) == 6 and "http://" not in page and "https://" not in page  # no network
    assert "PSNR</td>" in page and "&uarr; higher is better" in page and "&darr; lower is better" in page
    share = re.search(r"A \(MRI/41010.png\) (\d+)%", page)
    assert share and f"A {share.group(1)}%" in out and "report written to" in out
    code, _, err = run(
        capsys,
        "report",
        mri,
        ct,
        "-o",
        tmp_path / "s.html",
        "--weights",
        tiny_weights,
        "--rule",
        "sfnn",
        "--metrics",
        "psnr",
    )
    page = (tmp_path / "s.html").read_text()
    assert code == 0 and embedded_images(page) == 5 and "least-squares fit" in page  # no weight map for a feature rule


def test_a_pair_report_of_a_given_fusion_and_its_weight_map(tmp_path, capsys, samples, tiny_weights):
    mri, ct = samples / "CT-MRI" / "MRI" / "41010.png", samples / "CT-MRI" / "CT" / "41010.png"
    assert (
        main(
            [
                "fuse",
                str(mri),
                str(ct),
                "-o",
                str(tmp_path / "f.png"),
                "--weights",
                str(tiny_weights),
                "--rule",
                "sfnn-map",
                "--weight-map",
                str(tmp_path / "w.png"),
            ]
        )
        == 0
    )  # a map that is the blend
    fused_share = re.search(r"A (\d+)%", capsys.readouterr().out).group(1)
    code, out, _ = run(
        capsys,
        "report",
        mri,
        ct,
        "--fused",
        tmp_path / "f.png",
        "--weight-map",
        tmp_path / "w.png",
        "-o",
        tmp_path / "r.html",
        "--metrics",
        "ssim",
    )
    assert code == 0 and f"A {fused_share}%" in out
    assert "fusion read from" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-o", "{tmp}/r.txt"], "use a name ending in .html or .htm"),
        (["-o", "{tmp}/missing/r.html"], "does not exist"),
        (["-o", "{tmp}/r.html", "--weight-map", "{mri}"], "give --fused too"),
        (["-o", "{tmp}/r.html", "--metrics", "psnr,nope"], "unknown metric(s) nope"),
        (["-o", "{tmp}/r.html", "--colour-b", "hot"], "a colour map is for volumes"),
        (["-o", "{tmp}/r.html", "--fused", "{tmp}/missing.png"], "missing.png"),
    ],
)
def test_report_mistakes_are_one_line_and_write_nothing(tmp_path, capsys, samples, extra, message):
    mri, ct = samples / "CT-MRI" / "MRI" / "41010.png", samples / "CT-MRI" / "CT" / "41010.png"
    arguments = [word.format(tmp=tmp_path, mri=mri) for word in extra]
    code, _, err = run(capsys, "report", mri, ct, *arguments)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_volume_report_holds_the_layers_the_geometry_and_refuses_other_grids(tmp_path, capsys, tiny_weights):
    affine = oblique_affine()
    a = write_nifti(tmp_path / "a.nii.gz", phantom((12, 10, 4)) * 100, affine)
    b = write_nifti(tmp_path / "b.nii.gz", phantom((12, 10, 4), inner=0.3, outer=1.0) * 50, affine)
    assert (
        main(
            [
                "fuse",
                str(a),
                str(b),
                "-o",
                str(tmp_path / "f.nii.gz"),
                "--weights",
                str(tiny_weights),
                "--weight-map",
                str(tmp_path / "w.nii.gz"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    code, out, err = run(
        capsys,
        "report",
        a,
        b,
        "--fused",
        tmp_path / "f.nii.gz",
        "--weight-map",
        tmp_path / "w.nii.gz",
        "-o",
        tmp_path / "v.html",
    )
    assert code == 0, err
    page = (tmp_path / "v.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="volumes">(.*?)</script>', page).group(1))
    assert data["shape"] == [12, 10, 4] and sorted(data["layers"]) == ["a", "b", "f", "w"]
    assert data["colour_b"] == "grey" and "spacing 0.9, 1.1, 2.5 mm" in page
    code, _, err = run(capsys, "report", a, b, "-o", tmp_path / "x.html")
    assert code == 2 and "give the fused volume" in err
    other = write_nifti(tmp_path / "c.nii.gz", phantom((12, 10, 5)), affine)
    code, _, err = run(capsys, "report", a, other, "--fused", tmp_path / "f.nii.gz", "-o", tmp_path / "x.html")
    assert code == 2 and "different grids" in err and not (tmp_path / "x.html").exists()


def test_a_large_volume_is_shown_subsampled_and_a_bad_colour_map_refused():
    big = np.zeros((MAX_VOLUME_SIDE * 2 + 1, 8, 4), dtype=np.float32)
    page = volume_report(big, big, big)
    data = json.loads(re.search(r'id="volumes">(.*?)</script>', page).group(1))
    assert data["shape"] == [-(-(MAX_VOLUME_SIDE * 2 + 1) // 3), 8, 4] and "shown every (3, 1, 1) voxels" in page
    with pytest.raises(InputError, match="colour map 'jet'"):
        volume_report(big, big, big, colour_b="jet")
    with pytest.raises(InputError, match="one shape"):
        volume_report(big, big[:4], big)


def test_a_folder_report_and_a_benchmark_report(tmp_path, capsys, samples, tiny_weights):
    folders = samples / "CT-MRI"
    assert (
        main(
            [
                "fuse",
                str(folders / "MRI"),
                str(folders / "CT"),
                "-o",
                str(tmp_path / "fused"),
                "--weights",
                str(tiny_weights),
            ]
        )
        == 0
    )
    code, _, err = run(
        capsys,
        "report",
        folders / "MRI",
        folders / "CT",
        "--fused",
        tmp_path / "fused",
        "--metrics",
        "psnr,ssim",
        "-o",
        tmp_path / "f.html",
    )
    page = (tmp_path / "f.html").read_text()
    assert code == 0, err
    assert "1 fused image scored" in page and embedded_images(page) == 3 and "<circle" in page
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "scores.csv").write_text("method,pair,psnr,nabf\nm1,p1,10,0.2\nm1,p2,12,0.1\nm2,p1,14,0.3\nm2,p2,16,0.4\n")
    code, _, err = run(capsys, "report", bench, "-o", tmp_path / "b.html")
    page = (tmp_path / "b.html").read_text()
    assert code == 0, err
    assert "Caution: ranked on 2 pairs only" in page
    ranks = re.findall(r"<td>(m\d)</td>.*?<td>(\d\.\d\d)</td></tr>", page)
    assert ranks == [("m2", "1.00"), ("m1", "2.00")]  # ranked as medfuse benchmark ranks: psnr (nabf is not ranked)
    code, _, err = run(capsys, "report", tmp_path / "fused", "-o", tmp_path / "c.html")
    assert code == 2 and "benchmark output folder" in err


def test_strip_plot_and_pages_without_optional_parts():
    assert strip_plot([1.0, float("inf")], ["a", "b"]).count("<circle") == 1
    assert strip_plot([float("inf")], ["a"]) == '<svg width="0" height="0"></svg>'
    page = pair_report(np.zeros((8, 8)), np.ones((8, 8)), np.full((8, 8), 0.5))
    assert embedded_images(page) == 5 and "Metrics" not in page
    assert "Caution" not in benchmark_report({"m": {"psnr": (1.0, 0.0)}}, {"m": 1.0}, pairs=12)


SCORES = "method,pair,psnr\nm1,p1,10\nm1,p2,12\nm2,p1,14\nm2,p2,16\n"


def test_a_benchmark_folder_with_bytes_that_are_not_utf8(tmp_path, capsys):
    bench = tmp_path / "bench"
    bench.mkdir()
    for content, byte in (
        (SCORES.encode().replace(b"psnr", b"ps\xffnr"), "0xff at offset 14"),  # in the header
        (SCORES.encode().replace(b"m2,p2", b"m\xe92,p2"), "0xe9 at offset 45"),
    ):  # in a row
        (bench / "scores.csv").write_bytes(content)
        code, _, err = run(capsys, "report", bench, "-o", tmp_path / "refused.html")
        assert code == 2 and err.count("\n") == 1, err
        assert f"scores.csv: not UTF-8 text (byte {byte})" in err
        assert not (tmp_path / "refused.html").exists()

    (bench / "scores.csv").write_text(SCORES, encoding="utf-8")
    (bench / "table.md").write_bytes("2 pairs, mean ± standard deviation\n".encode("latin-1"))  # not UTF-8
    code, _, err = run(capsys, "report", bench, "-o", tmp_path / "b.html")
    assert code == 0, err
    assert "2 pairs, mean \ufffd standard deviation" in (tmp_path / "b.html").read_text(encoding="utf-8")


def test_benchmark_tables_are_utf8_whatever_the_locale(tmp_path, samples):
    import os
    import subprocess
    import sys

    ascii_locale = {**os.environ, "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "medfuse",
            "benchmark",
            str(samples / "CT-MRI"),
            "-o",
            str(tmp_path / "bench"),
            "--methods",
            "pixel-average",
            "--metrics",
            "psnr",
            "--montage-pairs",
            "0",
            "-q",
        ],
        env=ascii_locale,
        capture_output=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "mean ± standard deviation" in (tmp_path / "bench" / "table.md").read_text(encoding="utf-8")
