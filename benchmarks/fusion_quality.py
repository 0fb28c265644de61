"""Fusion quality of every rule on the test pairs, scored with medfuse.metrics.

    python benchmarks/fusion_quality.py --data ../shared/data/havard \
        [--rules sfnn,average] [--metrics en,mi,qabf,ssim,psnr,fmi,fsim] [--limit N] [--json out.json]

Fuses every test pair of CT-MRI, PET-MRI and SPECT-MRI with the shipped weights and each
rule, scores the fused image against its two sources (colour images on their Y channel,
as medfuse.metrics does) and prints the mean of each metric per set and rule.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

import medfuse
from medfuse import metrics
from medfuse.io import load_image

SETS = {"CT-MRI": "CT", "PET-MRI": "PET", "SPECT-MRI": "SPECT"}
DEFAULT_METRICS = "en,sd,mi,qabf,ssim,psnr,fmi,fsim"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/havard")
    parser.add_argument("--rules", default=",".join(medfuse.list_rules()))
    parser.add_argument("--metrics", default=DEFAULT_METRICS)
    parser.add_argument("--limit", type=int, help="at most N pairs per set")
    parser.add_argument("--json", help="also write the table as JSON here")
    args = parser.parse_args()
    rules, names = args.rules.split(","), args.metrics.split(",")
    model = medfuse.load_model()
    table: dict[str, dict[str, dict[str, float]]] = {}
    for set_name, modality in SETS.items():
        mris = sorted((Path(args.data) / set_name / "test" / "MRI").glob("*.png"))[: args.limit]
        scores = {rule: {name: [] for name in names} for rule in rules}
        for mri_path in tqdm(mris, desc=set_name, unit="pair"):
            mri = load_image(mri_path)
            other = load_image(mri_path.parents[1] / modality / mri_path.name)
            for rule in rules:
                fused = medfuse.fuse(mri, other, rule=rule, model=model)
                for name in names:
                    scores[rule][name].append(metrics.score(name, fused, mri, other))
        table[set_name] = {rule: {n: float(np.mean(v)) for n, v in s.items()} for rule, s in scores.items()}
        print(f"\n{set_name} ({len(mris)} test pairs), mean over pairs")
        print(f"{'rule':<14}" + "".join(f"{n:>9}" for n in names))
        for rule in rules:
            print(f"{rule:<14}" + "".join(f"{table[set_name][rule][n]:9.4f}" for n in names))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
