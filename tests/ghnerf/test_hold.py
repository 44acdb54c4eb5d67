"""The GHNERF_HOLD test hook: nothing when unset, else the first n passes go on and the next waits on its file."""

import threading
import time

from ghnerf.base.hold import hold_point


def test_unset_or_another_point_passes(tmp_path, monkeypatch):
    monkeypatch.delenv("GHNERF_HOLD", raising=False)
    hold_point("unset-point")
    monkeypatch.setenv("GHNERF_HOLD", f"elsewhere:0:{tmp_path / 'held'}")
    hold_point("unset-point")
    assert not (tmp_path / "held").exists()


def test_the_pass_after_n_waits_until_its_file_is_deleted(tmp_path, monkeypatch):
    held = tmp_path / "held"
    monkeypatch.setenv("GHNERF_HOLD", f"third-point:2:{held}")
    hold_point("third-point")
    hold_point("third-point")
    assert not held.exists()  # two passes went on
    third = threading.Thread(target=hold_point, args=("third-point",), daemon=True)
    third.start()
    while not held.exists() and third.is_alive():
        time.sleep(0.01)
    assert held.exists() and third.is_alive()  # parked at the point, its file created
    held.unlink()
    third.join(timeout=60)
    assert not third.is_alive()  # went on once the file was gone
