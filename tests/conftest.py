"""Shared fixtures: small synthetic datasets generated once per test session."""

from pathlib import Path

import pytest

from ghnerf.synth.generate import SynthConfig, generate_dataset


def _make(tmp_path_factory, name: str, **kwargs) -> Path:
    root = tmp_path_factory.mktemp(name)
    generate_dataset(SynthConfig(**kwargs), root)
    return root


@pytest.fixture(autouse=True)
def _own_keypoint_cache(tmp_path_factory, monkeypatch):
    """Each test gets an empty keypoint cache folder (ghnerf.base.keypoint_cache), never the user's ~/.cache."""
    from ghnerf.base.keypoint_cache import CACHE_DIR_VAR

    monkeypatch.setenv(CACHE_DIR_VAR, str(tmp_path_factory.mktemp("keypoint_cache")))


@pytest.fixture(scope="session")
def zju_root(tmp_path_factory) -> Path:
    """ZJU layout with distortion; subject 0 uses the 1-based 'Camera (k)' names, subject 1 'Camera_Bk'."""
    return _make(tmp_path_factory, "zju", layout="zju", subjects=2, frames=3, cameras=6, size=128, seed=3)


@pytest.fixture(scope="session")
def zju_plain_root(tmp_path_factory) -> Path:
    """ZJU layout without distortion."""
    return _make(tmp_path_factory, "zju_plain", layout="zju", subjects=1, frames=2, cameras=4, size=96, seed=5,
                 distortion=False, zju_naming="b")


@pytest.fixture(scope="session")
def rp_root(tmp_path_factory) -> Path:
    return _make(tmp_path_factory, "rp", layout="renderpeople", subjects=2, frames=3, cameras=5, size=112, seed=7)


@pytest.fixture(params=["zju_root", "zju_plain_root", "rp_root"])
def any_root(request) -> Path:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def student_root(tmp_path_factory) -> Path:
    """2 subjects x 2 frames x 8 cameras at 128 px (64 px after the default image scale): enough views for
    3 source views per target among the 4 training cameras."""
    return _make(tmp_path_factory, "student", layout="zju", subjects=2, frames=2, cameras=8, size=128, seed=3,
                 distortion=False)


@pytest.fixture(scope="session")
def tiny_run(student_root, tmp_path_factory) -> Path:
    """A ghnerf-resnet18 run trained for 2 steps on ``student_root`` (64 px images): enough to render from."""
    from ghnerf.student.config import preset
    from ghnerf.student.data import ExampleSet
    from ghnerf.student.train import train
    from ghnerf.student.train_config import TrainConfig

    run = tmp_path_factory.mktemp("tiny_run")
    train(preset("ghnerf-resnet18", pretrained="none"), TrainConfig(steps=2, rays=(32, 64), checkpoint_every=2),
          ExampleSet(student_root, "train"), run, log=lambda s: None)
    return run


@pytest.fixture
def moto_endpoint(monkeypatch):
    """A local S3 endpoint (moto's threaded server on loopback) with test credentials in the environment; no
    bucket yet. Yields its URL."""
    moto_server = pytest.importorskip("moto.server")
    from flows.stack import free_port

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
