"""The jaxtyping annotations of ghnerf.student and ghnerf.eval are checked while the tests run.

pyproject.toml's pytest ``addopts`` passes ``--jaxtyping-packages=ghnerf.student,ghnerf.eval,beartype.beartype``:
jaxtyping's pytest plugin installs its import hook before any test module is collected, so every function of
those packages is wrapped with ``@jaxtyped(typechecker=beartype)`` and a wrong shape fails the test that passes
it. Only this pytest process is instrumented (not subprocesses such as the DDP tests' torchrun workers), and
the library itself runs unchecked in production.
"""

import numpy as np
import pytest
import torch
from jaxtyping import TypeCheckError

from ghnerf.eval.metrics import masked_psnr, pck
from ghnerf.student.geometry import project
from ghnerf.student.renderers import composite


def test_the_packages_are_instrumented():
    # the import hook wraps each function (functools.wraps keeps a __wrapped__ to the original)
    assert hasattr(composite, "__wrapped__") and hasattr(masked_psnr, "__wrapped__")


def test_a_wrong_shape_fails_in_the_student():
    values, weights = torch.rand(4, 5, 3), torch.rand(4, 5)
    assert composite(values, weights).shape == (4, 3)
    with pytest.raises(TypeCheckError, match="weights"):
        composite(values, torch.rand(4, 6))  # S differs between the arguments
    with pytest.raises(TypeCheckError, match="weights"):
        composite(values, torch.rand(4, 5, 1))  # wrong rank
    with pytest.raises(TypeCheckError, match="weights"):
        composite(values, torch.ones(4, 5, dtype=torch.long))  # Float, not Int

    points, K, w2c = torch.rand(7, 3), torch.eye(3).expand(2, 3, 3), torch.eye(4).expand(2, 4, 4)
    uv, z = project(points, K, w2c)
    assert uv.shape == (2, 7, 2) and z.shape == (2, 7)
    with pytest.raises(TypeCheckError, match="w2c"):
        project(points, K, torch.eye(4).expand(3, 4, 4))  # V views of intrinsics, 3 of extrinsics


def test_a_wrong_shape_fails_in_eval():
    rng = np.random.default_rng(0)
    gt = rng.random((6, 8, 3))
    mask = np.ones((6, 8), bool)
    assert masked_psnr(gt * 0.9, gt, mask) > 0
    with pytest.raises(TypeCheckError, match="mask"):
        masked_psnr(gt * 0.9, gt, np.ones((8, 6), bool))  # H W swapped
    with pytest.raises(TypeCheckError, match="mask"):
        masked_psnr(gt * 0.9, gt, mask.astype(np.float32))  # Bool, not Float
    with pytest.raises(TypeCheckError, match="gts"):
        pck(np.zeros((2, 25, 3)), np.zeros((2, 25, 2)))  # (N, K, 3) keypoints
