"""The report screenshots in docs/ (README, "Look at a fusion"): a pair report, a folder
report, a benchmark report and the volume viewer, drawn by headless Chromium.

    python scripts/report_screenshots.py [--benchmark out/benchmark/CT-MRI] [--out docs]

The pair is the bundled PET-MRI 25015, the folder the two bundled PET-MRI pairs. The volumes
are nibabel's bundled T1 (anatomical.nii, 33 x 41 x 25 at 2 mm) and a synthetic PET made from
it: uptake 0.1 in the brain with one Gaussian hot spot; they are fused with --weight-map, then
shown with --colour-b hot. The benchmark report needs a `medfuse benchmark` output folder
(`make benchmark` writes them).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel
import numpy as np

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "medfuse" / "samples"


def medfuse(*arguments: object) -> None:
    subprocess.run([sys.executable, "-m", "medfuse", *map(str, arguments), "--quiet"], check=True)


def screenshot(page: Path, png: Path, width: int, height: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("needs chromium (Debian: apt-get install chromium)")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        check=True,
        stderr=subprocess.DEVNULL,
    )


def synthetic_pet(t1: Path, out: Path) -> None:
    image = nibabel.load(t1)
    data = image.get_fdata()
    i, j, k = np.indices(data.shape)
    spot = np.exp(-((i - 21) ** 2 + (j - 26) ** 2 + (k - 14) ** 2) / 20)
    pet = np.where(data / data.max() < 0.1, 0.0, 0.1 + spot) * 1000
    nibabel.save(nibabel.Nifti1Image(pet.astype(np.float32), image.affine), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", type=Path, default=Path("out/benchmark/CT-MRI"))
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        pair = SAMPLES / "PET-MRI/MRI/25015.png", SAMPLES / "PET-MRI/PET/25015.png"
        medfuse("report", *pair, "-o", work / "pair.html")
        screenshot(work / "pair.html", args.out / "report-pair.png", 1120, 900)
        medfuse("fuse", SAMPLES / "PET-MRI/MRI", SAMPLES / "PET-MRI/PET", "-o", work / "fused")
        medfuse(
            "report",
            SAMPLES / "PET-MRI/MRI",
            SAMPLES / "PET-MRI/PET",
            "--fused",
            work / "fused",
            "-o",
            work / "folder.html",
        )
        screenshot(work / "folder.html", args.out / "report-folder.png", 1100, 900)
        t1 = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
        synthetic_pet(t1, work / "pet.nii.gz")
        medfuse("fuse", t1, work / "pet.nii.gz", "-o", work / "f.nii.gz", "--weight-map", work / "w.nii.gz")
        medfuse(
            "report",
            t1,
            work / "pet.nii.gz",
            "--fused",
            work / "f.nii.gz",
            "--weight-map",
            work / "w.nii.gz",
            "--colour-b",
            "hot",
            "-o",
            work / "volume.html",
        )
        screenshot(work / "volume.html", args.out / "report-volume.png", 1300, 1000)
        if (args.benchmark / "scores.csv").is_file():
            medfuse("report", args.benchmark, "-o", work / "benchmark.html")
            screenshot(work / "benchmark.html", args.out / "report-benchmark.png", 1100, 1000)
        else:
            print(f"{args.benchmark} holds no benchmark output: report-benchmark.png not drawn")


if __name__ == "__main__":
    main()
