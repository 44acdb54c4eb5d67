"""Atomic writes: the file appears whole under its name, with the mode the umask gives a new file."""

import os
import stat

import numpy as np
import pytest

from ghnerf.base.fileio import write_image, write_json, write_npz


@pytest.fixture
def umask():
    """Set the process umask for one test, then restore it."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_have_the_umasks_mode_not_0600(tmp_path, umask, mask, mode):
    umask(mask)
    write_json(tmp_path / "a.json", {"x": 1})
    write_npz(tmp_path / "b.npz", x=np.zeros(2))
    write_image(tmp_path / "c.png", np.zeros((4, 4, 3), np.uint8))
    for name in ("a.json", "b.npz", "c.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.npz", "c.png"]  # no temporary left
