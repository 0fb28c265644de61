"""Sphinx configuration of medfuse's documentation: ``make docs`` builds it into docs/_build/html
(warnings are errors). Pages are Markdown (MyST); the API reference is autodoc on the docstrings;
the command-line reference is generated from the parsers (``_ext/medfuse_docs.py``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

import medfuse  # noqa: E402  (the installed package, editable in .venv)

project = "medfuse"
author = "the medfuse authors"
copyright = "the medfuse authors, MIT licence"
release = version = medfuse.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "medfuse_docs",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext"]

myst_enable_extensions: list[str] = []  # plain CommonMark + directives; a "$" in prose stays a dollar
myst_heading_anchors = 4  # links such as benchmarks.md#result-against-the-goal resolve to headings

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = True  # some docstrings have Args: sections
napoleon_numpy_docstring = True

html_theme = "alabaster"
html_title = f"medfuse {release}"
html_theme_options = {"description": "Multimodal medical image fusion with DRAN", "fixed_sidebar": True,
                      "page_width": "1180px", "sidebar_width": "240px"}
html_static_path: list[str] = []
