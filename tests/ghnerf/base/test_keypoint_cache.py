"""The on-disk keypoint cache of a frozen teacher (ghnerf.base.keypoint_cache)."""

from pathlib import Path

import numpy as np
import pytest

from ghnerf.base.keypoint_cache import CACHE_DIR_VAR, KeypointCache, cache_directory, image_key


def _keypoints(seed: int) -> np.ndarray:
    kp = np.random.default_rng(seed).uniform(0, 100, (25, 3))
    kp[3] = (np.nan, np.nan, 0.0)  # a missing joint round-trips as NaN
    return kp


def test_keypoints_survive_to_another_instance_and_only_where_asked(tmp_path):
    a, b = image_key(np.zeros((4, 4, 3), np.uint8)), image_key(np.ones((4, 4, 3), np.uint8))
    cache = KeypointCache("teacher-v1", 25, tmp_path)
    cache.put(a, _keypoints(0))
    assert cache.get(b) is None
    later = KeypointCache("teacher-v1", 25, tmp_path)  # another run
    np.testing.assert_array_equal(later.get(a), _keypoints(0))
    assert later.get(b) is None
    assert KeypointCache("teacher-v2", 25, tmp_path).get(a) is None  # another teacher version: another file
    assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == ["keypoints-teacher-v1.sqlite",
                                                                  "keypoints-teacher-v2.sqlite"]
    memory_only = KeypointCache("teacher-v3", 25, None)
    memory_only.put(a, _keypoints(1))
    np.testing.assert_array_equal(memory_only.get(a), _keypoints(1))
    assert not list(tmp_path.glob("*v3*"))
    with pytest.raises(ValueError, match=r"\(25, 3\)"):
        cache.put(a, np.zeros((17, 3)))


def test_the_key_is_the_exact_image():
    image = np.zeros((8, 6, 3), np.uint8)
    changed = image.copy()
    changed[7, 5, 2] = 1
    assert image_key(image) == image_key(image.copy())
    assert image_key(changed) != image_key(image)
    assert image_key(image.reshape(6, 8, 3)) != image_key(image)  # same bytes, another shape


def test_cache_directory_follows_the_environment(tmp_path):
    assert cache_directory({CACHE_DIR_VAR: str(tmp_path)}) == tmp_path
    assert cache_directory({CACHE_DIR_VAR: "none"}) is None
    assert cache_directory({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "ghnerf"
    assert cache_directory({}) == Path.home() / ".cache" / "ghnerf"


def test_an_unreadable_cache_file_is_said_kept_and_bypassed(tmp_path):
    path = tmp_path / "keypoints-t.sqlite"
    path.write_bytes(b"this is not a database, and it is not ours to delete" * 100)
    before = path.read_bytes()
    cache = KeypointCache("t", 25, tmp_path)
    key = image_key(np.zeros((2, 2, 3), np.uint8))
    with pytest.warns(RuntimeWarning, match=r"keypoints-t\.sqlite cannot be used.*GHNERF_CACHE_DIR"):
        assert cache.get(key) is None
    cache.put(key, _keypoints(2))  # memory only from now on, no second warning
    np.testing.assert_array_equal(cache.get(key), _keypoints(2))
    assert path.read_bytes() == before
