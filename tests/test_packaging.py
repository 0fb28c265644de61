"""The packaging files agree with each other: one version, the lock inside the ranges, the oldest
constraints on the lower bounds, a valid-looking citation file."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import medfuse

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(name: str) -> dict[str, Version]:
    """The ``name==version`` lines of a constraints file under requirements/, by canonical name."""
    found = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            found[canonicalize_name(requirement.name)] = Version(specifier.version)
    return found


def requirements() -> list[Requirement]:
    """Every requirement of the core and of the extras, but the extras that name medfuse itself."""
    listed = [*PROJECT["dependencies"], *(r for extra in PROJECT["optional-dependencies"].values() for r in extra)]
    return [Requirement(r) for r in listed if not r.startswith("medfuse[")]


def test_the_version_has_one_source():
    assert "version" in PROJECT["dynamic"] and "version" not in PROJECT
    assert metadata.version("medfuse") == medfuse.__version__
    citation = (ROOT / "CITATION.cff").read_text()
    assert re.search(rf"^version: {re.escape(medfuse.__version__)}$", citation, re.MULTILINE)
    assert f"## {medfuse.__version__} - " in (ROOT / "CHANGELOG.md").read_text()


def test_requirements_are_ranges_not_pins():
    for requirement in requirements():
        operators = {specifier.operator for specifier in requirement.specifier}
        assert ">=" in operators and "==" not in operators, str(requirement)


def test_the_lock_lies_inside_the_ranges_and_keeps_the_local_torch():
    lock = pins("lock.txt")
    assert lock["torch"] == Version("2.13.0")
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{name} is not in requirements/lock.txt"
        assert requirement.specifier.contains(lock[name]), f"lock's {name} {lock[name]} is outside {requirement}"


def test_the_oldest_constraints_are_the_lower_bounds():
    oldest = pins("oldest.txt")
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        if name in oldest:
            (lower,) = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
            assert oldest[name] == lower, (
                f"oldest.txt has {name} {oldest[name]}, pyproject.toml's lower bound is {lower}"
            )
    core = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    assert core <= set(oldest), f"oldest.txt lacks {core - set(oldest)}"


@pytest.mark.parametrize(
    "field",
    [
        "cff-version: 1.2.0",
        "type: software",
        "license: MIT",
        "message: ",
        "title: ",
        "authors:",
        'value: "arXiv:2212.04661"',
    ],
)
def test_the_citation_file_has_the_required_fields(field):
    assert re.search(rf"^\s*(- )?{re.escape(field)}", (ROOT / "CITATION.cff").read_text(), re.MULTILINE)


def test_the_licence_is_mit_with_the_authors():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the medfuse authors\n")
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
