"""The version a user cites is the version they ran."""

from __future__ import annotations

from pathlib import Path

import yaml

import deeptao

ROOT = Path(__file__).resolve().parents[1]


def test_the_citation_file_names_the_package_version():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert str(citation["version"]) == deeptao.__version__
    assert citation["references"], "the papers the package builds on are cited beside it"
