import pytest

from ghnerf.synth.generate import SynthConfig, generate_dataset


@pytest.fixture(scope="session")
def student_root(tmp_path_factory):
    """2 subjects x 2 frames x 8 cameras at 128 px (64 px after the default image scale)."""
    root = tmp_path_factory.mktemp("student_data")
    generate_dataset(SynthConfig(layout="zju", subjects=2, frames=2, cameras=8, size=128, seed=3, distortion=False),
                     root)
    return root
