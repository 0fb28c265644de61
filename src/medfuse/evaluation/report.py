"""One self-contained HTML page to look at a fusion: arrays and scores in, HTML text out.

- :func:`pair_report`: two 2-D sources, their fusion, A's weight map and the differences
  ``|F - A|`` and ``|F - B|`` side by side, each source's share of the fused foreground and
  the metrics with the direction that is better and where their formula is given.
- :func:`folder_report`: the scores of many fused images (an ``evaluate`` of folders): per
  metric a strip of every image's value, the mean and spread, and the first few triples.
- :func:`benchmark_report`: a ``medfuse benchmark`` output: the methods' means and mean ranks,
  a plot of the ranks, its distributions and montage figures, and a caution for few pairs.
- :func:`volume_report`: a viewer of two volumes and their fusion on one grid: three
  orthogonal planes, a slider per plane (click a plane to move the others there), a slider
  from source A through the fusion to source B, A's weight map as a fourth layer, a colour map
  for a PET or SPECT source, and the geometry stated.

The page needs no network: images and volumes are embedded (PNG data URIs, base64 bytes), its
script is inline, and it opens from a ``file://`` URL. Writing it to a file is the caller's job.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence

import numpy as np

from medfuse._shared.errors import InputError
from medfuse.evaluation.metrics import METRICS
from medfuse.evaluation.metrics.fidelity import SMALL_SHARE
from medfuse.image.scales import grey_unit

COLOUR_MAPS = ("grey", "hot")
"""How a volume source can be shown: grey, or ``hot`` (black, red, yellow, white) for uptake, with
the fusion then shown in B's colours (:func:`medfuse.image.colour.colour_overlay`)."""
MAX_VOLUME_SIDE = 160
"""A volume longer than this along an axis is shown subsampled to it (the page holds every layer)."""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; background: #111; color: #eee; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
figure { display: inline-block; margin: 0 0.6em 0.6em 0; vertical-align: top; }
figcaption { font-size: 0.85em; color: #bbb; max-width: 260px; }
img, canvas { image-rendering: pixelated; border: 1px solid #444; background: #000; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.8em; border-bottom: 1px solid #333; text-align: left; }
.note { color: #bbb; font-size: 0.9em; max-width: 60em; }
.warn { color: #f90; }
label { display: inline-block; min-width: 11em; }
input[type=range] { width: 16em; vertical-align: middle; }
"""


def _as_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats or 8/16-bit integers to 8 bits for display."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image // 257).astype(np.uint8)
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def png_data_uri(image: np.ndarray) -> str:
    """A grey (H, W) or RGB (H, W, 3) image as a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_as_uint8(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def metric_rows(scores: Mapping[str, float]) -> str:
    """Table rows: metric, value, which direction is better, and where the formula is."""
    rows = []
    for name, value in scores.items():
        metric = METRICS.get(name)
        if metric is None:
            raise InputError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
        paragraph = " ".join((metric.function.__doc__ or "").strip().split("\n\n")[0].split()).replace("``", "")
        summary = paragraph.split(": ")[0].split(". ")[0].split("; ")[0].rstrip(".")
        arrow = "&uarr; higher is better" if metric.higher_is_better else "&darr; lower is better"
        rows.append(
            f"<tr><td>{name.upper()}</td><td>{value:.4f}</td><td>{arrow}</td><td>{html.escape(summary)} "
            f"(<code>medfuse.evaluation.metrics.{name}</code>, docs/metrics.md)</td></tr>"
        )
    return "\n".join(rows)


def _page(title: str, body: str, script: str = "") -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n{body}\n"
        f"{f'<script>{script}</script>' if script else ''}</body></html>\n"
    )


def _shares_text(shares: tuple[float, float] | None, names: Sequence[str], measure: str) -> str:
    if shares is None:
        return ""
    text = (
        f"<p>Share of the fused foreground ({html.escape(measure)}): A ({html.escape(names[0])}) "
        f"{shares[0]:.0%}, B ({html.escape(names[1])}) {shares[1]:.0%}.</p>"
    )
    for name, share in zip(names, shares):
        if share < SMALL_SHARE:
            text += (
                f'<p class="warn">{html.escape(name)} keeps only {share:.0%} of the fused foreground: the '
                "fusion shows mostly the other source.</p>"
            )
    return text


def pair_report(
    image_a: np.ndarray,
    image_b: np.ndarray,
    fused: np.ndarray,
    w_a: np.ndarray | None = None,
    scores: Mapping[str, float] | None = None,
    names: Sequence[str] = ("A", "B"),
    shares: tuple[float, float] | None = None,
    shares_measure: str = "weight map",
    title: str = "medfuse fusion report",
    notes: Sequence[str] = (),
) -> str:
    """The HTML page for one fused pair: sources, fusion, weight map of A (white = all A) and
    the absolute differences of the fusion's grey level from each grey source (white = 1), one
    figure each at full size; then the shares and the metrics (``scores``, by name)."""
    grey_a, grey_b, grey_f = grey_unit(image_a), grey_unit(image_b), grey_unit(fused)
    if not grey_a.shape == grey_b.shape == grey_f.shape:
        raise InputError(f"sources and fusion differ in size: {grey_a.shape}, {grey_b.shape}, {grey_f.shape}")
    figures = [(image_a, f"A: {names[0]}"), (image_b, f"B: {names[1]}"), (fused, "fusion")]
    if w_a is not None:
        figures.append((np.asarray(w_a, dtype=np.float64), "weight of A (white: all A, black: all B)"))
    figures += [(np.abs(grey_f - grey_a), "|fusion - A| (white: 1)"), (np.abs(grey_f - grey_b), "|fusion - B|")]
    body = "\n".join(
        f'<figure><img alt="{html.escape(caption)}" src="{png_data_uri(image)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for image, caption in figures
    )
    body += _shares_text(shares, names, shares_measure)
    if scores:
        body += (
            "<h2>Metrics</h2><table><tr><th>metric</th><th>value</th><th>better</th><th>what</th></tr>"
            f'{metric_rows(scores)}</table><p class="note">Metrics that average over both sources (PSNR, '
            "VIF, MI) can be won by copying the stronger source: look at the images above.</p>"
        )
    body += "".join(f'<p class="note">{html.escape(note)}</p>' for note in notes)
    return _page(title, body)


def _direction(metric: str) -> str:
    return "&uarr;" if METRICS[metric].higher_is_better else "&darr;"


def strip_plot(values: Sequence[float], labels: Sequence[str], width: int = 420) -> str:
    """An inline SVG: one dot per value on a horizontal axis from the smallest to the largest
    finite value, each with its label as a tooltip; infinite values are left out and counted."""
    finite = [(value, label) for value, label in zip(values, labels) if np.isfinite(value)]
    if not finite:
        return '<svg width="0" height="0"></svg>'
    low, high = min(v for v, _ in finite), max(v for v, _ in finite)
    span = high - low or 1.0
    dots = "".join(
        f'<circle cx="{10 + (width - 20) * (value - low) / span:.1f}" cy="12" r="4" fill="#4af" '
        f'fill-opacity="0.6"><title>{html.escape(label)}: {value:.4g}</title></circle>'
        for value, label in finite
    )
    return (
        f'<svg width="{width}" height="34" role="img"><line x1="10" x2="{width - 10}" y1="12" '
        f'y2="12" stroke="#666"/>{dots}<text x="10" y="31" fill="#bbb" font-size="11">{low:.4g}</text>'
        f'<text x="{width - 10}" y="31" fill="#bbb" font-size="11" text-anchor="end">'
        f"{high:.4g}</text></svg>"
    )


def folder_report(
    scores: Mapping[str, Mapping[str, float]],
    triples: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = (),
    problems: Sequence[str] = (),
    title: str = "medfuse evaluation",
    notes: Sequence[str] = (),
) -> str:
    """The HTML page for the scores of many fused images (``scores``: image name -> metric ->
    value): per metric, which direction is better, the mean and standard deviation of its finite
    values, how many are infinite and a strip of every image's value; then ``triples``
    (name, A, B, fused) side by side, and the images that could not be scored."""
    from medfuse.evaluation.scoring import mean_and_std

    names = list(scores)
    metrics = list(next(iter(scores.values()))) if scores else []
    rows = []
    for metric in metrics:
        values = [scores[name][metric] for name in names]
        mean, std = mean_and_std(values)
        infinite = sum(1 for value in values if np.isinf(value))
        rows.append(
            f"<tr><td>{metric.upper()} {_direction(metric)}</td><td>{mean:.4f} &plusmn; {std:.4f}</td>"
            f"<td>{infinite or ''}</td><td>{strip_plot(values, names)}</td></tr>"
        )
    body = (
        f"<p>{len(names)} fused image{'s' if len(names) != 1 else ''} scored. &uarr;: higher is better, "
        "&darr;: lower is better; formulas in "
        "docs/metrics.md.</p><table><tr><th>metric</th><th>mean &plusmn; std (finite values)</th>"
        f"<th>infinite</th><th>every image</th></tr>{''.join(rows)}</table>"
    )
    for name, image_a, image_b, fused in triples:
        body += f"<h2>{html.escape(name)}</h2>" + "".join(
            f'<figure><img alt="{caption}" src="{png_data_uri(image)}"><figcaption>{caption}</figcaption></figure>'
            for image, caption in ((image_a, "A"), (image_b, "B"), (fused, "fusion"))
        )
    if problems:
        body += "<h2>Not scored</h2><ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in problems) + "</ul>"
    body += "".join(f'<p class="note">{html.escape(note)}</p>' for note in notes)
    return _page(title, body)


def benchmark_report(
    means: Mapping[str, Mapping[str, tuple[float, float]]],
    ranks: Mapping[str, float],
    pairs: int,
    figures: Sequence[tuple[bytes, str]] = (),
    heading: str = "",
    title: str = "medfuse benchmark",
) -> str:
    """The HTML page of a benchmark: ``means`` (method -> metric -> (mean, std)) in a table
    ordered by the mean rank (``ranks``, 1 = best), the ranks as bars, the PNG ``figures``
    (bytes, caption) embedded, and the caution of :func:`~medfuse.evaluation.benchmark.few_pairs_caution`
    when ``pairs`` is under ``FEW_PAIRS``."""
    from medfuse.evaluation.benchmark import FEW_PAIRS, few_pairs_caution

    order = sorted(means, key=lambda method: (ranks[method], method))
    metrics = list(next(iter(means.values()))) if means else []
    header = "".join(f"<th>{m.upper()} {_direction(m)}</th>" for m in metrics)
    rows = "".join(
        f"<tr><td>{html.escape(method)}</td>"
        + "".join(f"<td>{means[method][m][0]:.4f} &plusmn; {means[method][m][1]:.4f}</td>" for m in metrics)
        + f"<td>{ranks[method]:.2f}</td></tr>"
        for method in order
    )
    worst = max(ranks.values()) if ranks else 1.0
    bars = "".join(
        f'<g transform="translate(0,{18 * n})"><text x="150" y="12" fill="#ddd" font-size="12" '
        f'text-anchor="end">{html.escape(method)}</text><rect x="156" y="2" height="12" '
        f'width="{300 * ranks[method] / worst:.1f}" fill="#4af"/>'
        f'<text x="{162 + 300 * ranks[method] / worst:.1f}" '
        f'y="12" fill="#bbb" font-size="11">{ranks[method]:.2f}</text></g>'
        for n, method in enumerate(order)
    )
    body = f"<p>{html.escape(heading)}</p>" if heading else ""
    if pairs < FEW_PAIRS:
        body += f'<p class="warn">{html.escape(few_pairs_caution(pairs))}</p>'
    body += (
        f'<h2>Mean rank over the metrics (1 = best; shorter is better)</h2><svg width="520" '
        f'height="{18 * len(order) + 4}" role="img">{bars}</svg>'
        f"<h2>Scores</h2><table><tr><th>method</th>{header}<th>mean rank</th></tr>{rows}</table>"
        '<p class="note">&uarr;: higher is better, &darr;: lower is better; formulas in docs/metrics.md. '
        "Metrics "
        "that average over both sources can be won by copying the stronger source: look at the montage.</p>"
    )
    for data, caption in figures:
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        body += f'<h2>{html.escape(caption)}</h2><img alt="{html.escape(caption)}" src="{uri}">'
    return _page(title, body)


def _subsample(volume: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    steps = tuple(max(1, -(-n // MAX_VOLUME_SIDE)) for n in volume.shape)
    return volume[:: steps[0], :: steps[1], :: steps[2]], steps


def _volume_bytes(volume: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(_as_uint8(volume)).tobytes()).decode("ascii")


VIEWER_SCRIPT = r"""
const V = JSON.parse(document.getElementById('volumes').textContent);
const [NI, NJ, NK] = V.shape;
const layers = {};
for (const [name, text] of Object.entries(V.layers)) {
  const raw = atob(text); const bytes = new Uint8Array(raw.length);
  for (let n = 0; n < raw.length; n++) bytes[n] = raw.charCodeAt(n);
  layers[name] = bytes;
}
function hot(v) { return [Math.min(255, 3 * v), Math.max(0, Math.min(255, 3 * v - 255)), Math.max(0, 3 * v - 510)]; }
function overlay(y, rgb, v) {  // luminance y, the chroma of rgb scaled by v / 255 (BT.601), as colour_overlay
  const s = v / 255;
  const cb = s * (-0.168736 * rgb[0] - 0.331264 * rgb[1] + 0.5 * rgb[2]);
  const cr = s * (0.5 * rgb[0] - 0.418688 * rgb[1] - 0.081312 * rgb[2]);
  return [y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb].map(c => Math.max(0, Math.min(255, c)));
}
function colour(name, i, j, k) {
  const v = at(name, i, j, k);
  if (V.colour_b !== 'hot' || name === 'a') return [v, v, v];
  const b = at('b', i, j, k);
  return name === 'b' ? hot(v) : overlay(v, hot(b), b);
}
const controls = {i: document.getElementById('slice-i'), j: document.getElementById('slice-j'),
                  k: document.getElementById('slice-k'), view: document.getElementById('view'),
                  weights: document.getElementById('show-weights')};
// plane -> [fixed axis, column axis, row axis]; rows drawn with the highest index on top
const planes = {axial: ['k', 'i', 'j'], coronal: ['j', 'i', 'k'], sagittal: ['i', 'j', 'k']};
const size = {i: NI, j: NJ, k: NK};
function at(name, i, j, k) { return layers[name][(i * NJ + j) * NK + k]; }
function mix(i, j, k) {
  if (controls.weights.checked && layers.w) { const w = at('w', i, j, k); return [w, w, w]; }
  const t = Number(controls.view.value) / 100;  // 0: A, 1: fusion, 2: B
  const [p, q, s] = t <= 1 ? ['a', 'f', t] : ['f', 'b', t - 1];
  const x = colour(p, i, j, k), y = colour(q, i, j, k);
  return [0, 1, 2].map(c => (1 - s) * x[c] + s * y[c]);
}
function draw() {
  for (const [plane, [fixed, across, down]] of Object.entries(planes)) {
    const canvas = document.getElementById(plane);
    const width = size[across], height = size[down];
    const context = canvas.getContext('2d');
    const image = context.createImageData(width, height);
    const index = {i: 0, j: 0, k: 0};
    index[fixed] = Number(controls[fixed].value);
    for (let row = 0; row < height; row++) {
      index[down] = height - 1 - row;
      for (let column = 0; column < width; column++) {
        index[across] = column;
        const rgb = mix(index.i, index.j, index.k), n = 4 * (row * width + column);
        image.data[n] = rgb[0]; image.data[n + 1] = rgb[1]; image.data[n + 2] = rgb[2]; image.data[n + 3] = 255;
      }
    }
    context.putImageData(image, 0, 0);
  }
  for (const axis of ['i', 'j', 'k']) document.getElementById('value-' + axis).textContent = controls[axis].value;
  const t = Number(controls.view.value);
  document.getElementById('value-view').textContent =
    controls.weights.checked ? 'weight of A' : t === 0 ? 'A' : t === 100 ? 'fusion' : t === 200 ? 'B' :
    t < 100 ? `A ${100 - t}% / fusion ${t}%` : `fusion ${200 - t}% / B ${t - 100}%`;
}
for (const [plane, [fixed, across, down]] of Object.entries(planes)) {
  document.getElementById(plane).addEventListener('click', event => {
    const canvas = event.target, box = canvas.getBoundingClientRect();
    const column = Math.floor((event.clientX - box.left) / box.width * size[across]);
    const row = Math.floor((event.clientY - box.top) / box.height * size[down]);
    controls[across].value = Math.min(size[across] - 1, Math.max(0, column));
    controls[down].value = Math.min(size[down] - 1, Math.max(0, size[down] - 1 - row));
    draw();
  });
}
document.addEventListener('keydown', event => {
  const jumps = {a: 0, f: 100, b: 200};
  if (event.target.tagName === 'INPUT') return;
  if (event.key in jumps) { controls.view.value = jumps[event.key]; draw(); }
  if (event.key === 'w' && layers.w) { controls.weights.checked = !controls.weights.checked; draw(); }
});
for (const control of Object.values(controls)) control.addEventListener('input', draw);
draw();
"""


def volume_report(
    volume_a: np.ndarray,
    volume_b: np.ndarray,
    fused: np.ndarray,
    w_a: np.ndarray | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    geometry: str = "",
    colour_b: str = "grey",
    names: Sequence[str] = ("A", "B"),
    shares: tuple[float, float] | None = None,
    title: str = "medfuse volume fusion",
    notes: Sequence[str] = (),
) -> str:
    """The HTML viewer of two (I, J, K) volumes in [0, 1] on one grid, their fusion and A's
    weight map: axial (k), coronal (j) and sagittal (i) planes drawn with the voxel spacing's
    aspect, each with a slider; clicking a plane moves the other two to that point; a slider
    from A (0) through the fusion (100) to B (200); keys ``a``, ``f``, ``b`` jump to each and
    ``w`` shows the weight map. ``colour_b`` ("grey" or "hot") colours B (PET, SPECT).
    ``geometry`` is stated under the viewer (spacing, orientation, origin)."""
    volumes = {"a": volume_a, "b": volume_b, "f": fused} | ({} if w_a is None else {"w": w_a})
    shapes = {name: np.shape(volume) for name, volume in volumes.items()}
    if len(set(shapes.values())) != 1 or len(shapes["a"]) != 3:
        raise InputError(f"the volumes must be (I, J, K) of one shape, got {shapes}")
    if colour_b not in COLOUR_MAPS:
        raise InputError(f"colour map {colour_b!r}: choose one of {', '.join(COLOUR_MAPS)}")
    shown: dict[str, np.ndarray] = {}
    steps: tuple[int, ...] = (1, 1, 1)
    for name, volume in volumes.items():
        shown[name], steps = _subsample(np.asarray(volume, dtype=np.float32))
    shape = shown["a"].shape
    pitch = [s * step for s, step in zip(spacing, steps)]
    data = {"shape": shape, "colour_b": colour_b, "layers": {name: _volume_bytes(v) for name, v in shown.items()}}
    scale = 480 / max(n * p for n, p in zip(shape, pitch))

    def canvas(plane: str, across: int, down: int) -> str:
        width, height = shape[across] * pitch[across] * scale, shape[down] * pitch[down] * scale
        return (
            f'<figure><canvas id="{plane}" width="{shape[across]}" height="{shape[down]}" '
            f'style="width:{width:.0f}px;height:{height:.0f}px"></canvas><figcaption>{plane}</figcaption>'
            "</figure>"
        )

    sliders = "".join(
        f'<div><label for="slice-{axis}">{plane} slice ({axis})</label><input type="range" id="slice-{axis}" '
        f'min="0" max="{n - 1}" value="{n // 2}"> <span id="value-{axis}"></span></div>'
        for axis, plane, n in zip("ijk", ("sagittal", "coronal", "axial"), shape)
    )
    body = (
        canvas("axial", 0, 1)
        + canvas("coronal", 0, 2)
        + canvas("sagittal", 1, 2)
        + sliders
        + '<div><label for="view">A &harr; fusion &harr; B</label><input type="range" id="view" min="0" '
        'max="200" value="100"> <span id="value-view"></span></div>'
        f'<div><label for="show-weights">weight map of A</label><input type="checkbox" id="show-weights"'
        f"{'' if w_a is not None else ' disabled'}></div>"
        f'<p class="note">A: {html.escape(names[0])}; B: {html.escape(names[1])} ({html.escape(colour_b)}). '
        "Keys: a, f, b show A, the fusion, B; w the weight map of A (white: all A); arrows move a focused "
        "slider; a click on a plane moves the other planes there.</p>"
        f'<p class="note">Grid: {" x ".join(map(str, np.shape(volume_a)))} voxels'
        f"{f', shown every {steps} voxels' if steps != (1, 1, 1) else ''}; {html.escape(geometry)}</p>"
        + _shares_text(shares, names, "weight map")
        + "".join(f'<p class="note">{html.escape(note)}</p>' for note in notes)
        + f'<script type="application/json" id="volumes">{json.dumps(data)}</script>'
    )
    return _page(title, body, VIEWER_SCRIPT)
