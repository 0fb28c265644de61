"""The documentation cannot rot: the examples of its pages run, the README stays a front page whose
links resolve, the generated command-line reference covers every command, and (where Sphinx is
installed, ``pip install -r requirements/docs.txt``) the site builds with warnings as errors.

Examples: every ```python block of a page runs, in page order and one namespace per page, in an
empty folder (so ``fused.png`` lands there; ``src`` points at the repository's, for paths such as
``src/medfuse/samples/...``). A block is left out by a MyST comment on the line just above it,
``% test: skip (why)``; a ```bash block runs only under ``% test: run``, each line a ``medfuse``
command, called in-process, that must exit 0. Nothing here needs the documentation tools.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import medfuse
from medfuse.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
README_MAX_LINES = 200
PAGES = sorted(path for path in DOCS.rglob("*.md") if "_build" not in path.relative_to(DOCS).parts)
MARKER = re.compile(r"^% test: (run|skip)\b")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def code_blocks(path: Path) -> list[tuple[int, str, str, str | None]]:
    """``(first line number, language, code, marker)`` of each fenced block of a Markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        fence = re.match(r"^(```+)(\S*)", lines[index])
        if fence:
            before = lines[index - 1] if index else ""
            marker = MARKER.match(before)
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith(fence.group(1)))
            blocks.append(
                (index + 2, fence.group(2), "\n".join(lines[index + 1 : end]), marker.group(1) if marker else None)
            )
            index = end
        index += 1
    return blocks


def runnable(path: Path) -> list[tuple[int, str, str]]:
    return [
        (line, language, code)
        for line, language, code, marker in code_blocks(path)
        if (language == "python" and marker != "skip") or (language == "bash" and marker == "run")
    ]


@pytest.mark.parametrize(
    "page", [page for page in [README, *PAGES] if runnable(page)], ids=lambda page: str(page.relative_to(REPO))
)
def test_examples_run(page, tmp_path, monkeypatch):
    (tmp_path / "src").symlink_to(REPO / "src")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for line, language, code in runnable(page):
        if language == "python":
            exec(compile("\n" * (line - 1) + code, str(page), "exec"), namespace)  # noqa: S102 (our own pages)
            continue
        for offset, command in enumerate(code.splitlines()):
            words = shlex.split(command, comments=True)
            if not words:
                continue
            assert words[0] == "medfuse", f"{page}:{line + offset}: a tested bash block holds medfuse commands only"
            assert main(words[1:]) == 0, f"{page}:{line + offset}: {command}"


def test_every_page_has_a_checked_example_or_none_to_check():
    """A page's python blocks that are left out say why."""
    for page in [*PAGES, README]:
        for line, _, _, marker in code_blocks(page):
            if marker == "skip":
                text = page.read_text(encoding="utf-8").splitlines()[line - 3]
                assert re.search(r"\(.+\)", text), f"{page}:{line - 2}: say why the example is not run"


def slug(heading: str) -> str:
    """The anchor of a Markdown heading, as GitHub and MyST (``myst_heading_anchors``) make it."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {slug(match) for match in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def relative_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return [target for target in LINK.findall(text) if not re.match(r"^[a-z]+:", target)]


@pytest.mark.parametrize("path", [README, REPO / "BENCHMARKS.md", *PAGES], ids=lambda path: str(path.relative_to(REPO)))
def test_links_resolve(path):
    """Every link to a file of the repository names one that exists, and a link to a heading of a
    Markdown file names a heading that it has."""
    for target in relative_links(path):
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        assert resolved.exists(), f"{path.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{path.name}: {target}: no such heading"


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move the rest into docs/"
    first = next(code for _, language, code, _ in code_blocks(README) if language == "bash")
    commands = [line.split("#")[0].strip() for line in first.splitlines()]
    assert commands[:2] == ["make demo", "make test"], "make demo and make test open the README"
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in relative_links(README)}
    for section in (
        "docs/install.md",
        "docs/quickstart.md",
        "docs/cli.md",
        "docs/benchmarks.md",
        "docs/api/index.md",
        "docs/layout.md",
        "docs/model-card.md",
    ):
        assert (REPO / section).resolve() in linked, f"the README links to {section}"


def test_layout_page_names_every_package():
    """docs/layout.md is the map of the source tree: each package and module it lists exists, and
    each package of src/medfuse is on it."""
    text = (DOCS / "layout.md").read_text(encoding="utf-8")
    package_root = Path(medfuse.__file__).parent
    packages = sorted(path.name for path in package_root.iterdir() if path.is_dir() and (path / "__init__.py").exists())
    for package in packages:
        assert re.search(rf"^  {package}/", text, flags=re.M), f"docs/layout.md does not list {package}/"
    for package, body in re.findall(r"^  (\w+)/ +\d* *(.*?)(?=^  \w+/|^\S)", text, flags=re.M | re.S):
        for module in re.findall(r"\b(\w+\.py)\b", body):
            found = list((package_root / package).rglob(module))
            assert found, f"docs/layout.md lists {package}/{module}, which does not exist"


def _extension():
    spec = importlib.util.spec_from_file_location("medfuse_docs", DOCS / "_ext" / "medfuse_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_line_reference_covers_every_command():
    helps = _extension().command_helps()
    assert [name for name, _, _ in helps] == ["", *COMMANDS]
    for name, _, text in helps:
        assert text.startswith(f"usage: medfuse {name}".rstrip()), text[:80]
        if name:
            assert "--threads" in text and "--quiet" in text


def test_public_names_are_documented():
    entries = [_extension()._public_entry(name) for name in medfuse._PUBLIC]
    assert len(entries) == len(medfuse._PUBLIC) and all(entry.startswith(".. ") for entry in entries)


def test_site_builds_without_warnings(tmp_path):
    if importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_parser") is None:
        pytest.skip("Sphinx and myst-parser are not installed (make docs, or pip install -r requirements/docs.txt)")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-E",
            "-q",
            "-b",
            "html",
            str(DOCS),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-5000:]
    assert (tmp_path / "html" / "cli.html").exists()
