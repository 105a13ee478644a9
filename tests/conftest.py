"""Shared fixtures: release-format files written independently with astropy."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

from tests.fitsfactory import write_release_file  # noqa: E402


@pytest.fixture
def release_file(tmp_path):
    """Factory writing one release-format file under tmp_path/<repo>/data/<label>/."""

    def make(label="SN", name=None, **kw):
        return write_release_file(tmp_path, label=label, name=name, **kw)

    return make
