"""The arithmetic a training step runs in: chosen once per run, said and recorded (``TrainConfig.cpu_precision``).

On CUDA the forward pass runs under float16 autocast with a gradient scaler, as it always has. On a CPU with native
bfloat16 arithmetic (AVX512-BF16 or AMX: oneDNN's bf16 convolutions and matrix products), the forward pass runs
under bfloat16 autocast: the weights, the optimiser and the gradients stay float32, convolutions and linear layers
compute in bfloat16, and the ops autocast keeps in float32 (``grid_sample``, losses, reductions) stay there. On this
project's CPUs that made a ``ghnerf-resnet18`` step 1.21x faster than float32 (1.04x for the MediaPipe presets, whose
frozen network runs outside torch), with the same loss after 500 steps and the same held-out PCK within noise
(``benchmarks/train_speed.py``, ``benchmarks/student_quality.py``; docs/training-speed.md). A CPU without native
bfloat16 would emulate it, slower than float32: ``auto`` keeps float32 there. Evaluation and rendering always run in
float32 (the port matches the original ENeRF to 2e-5; a checkpoint's weights are float32 whatever the training
precision).
"""

from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace

import torch

from ghnerf.student.train_config import CpuPrecision


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles), as torch reports it."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


@dataclass(frozen=True)
class TrainingPrecision:
    """What a run's training steps compute in.

    Attributes:
        requested: ``TrainConfig.cpu_precision`` as asked.
        autocast: the autocast dtype of the forward pass ("float16" on CUDA, "bfloat16", or "float32": none).
        reason: why, in words (for the log and ``run.json``).
    """

    requested: str
    autocast: str
    reason: str

    def context(self, device: torch.device) -> AbstractContextManager:
        """The autocast context a forward pass runs in (a no-op for float32)."""
        if self.autocast == "float32":
            return nullcontext()
        return torch.autocast(torch.device(device).type, dtype=getattr(torch, self.autocast))

    def record(self) -> dict:
        return asdict(self)

    def without_grad_scaler(self) -> "TrainingPrecision":
        """This precision for a loop that has no gradient scaler: float16's small gradients would underflow
        there, so it runs in float32; bfloat16 (float32's exponent range) and float32 need none."""
        if self.autocast != "float16":
            return self
        return replace(self, autocast="float32", reason=self.reason + "; float32 where no gradient scaler runs")


def training_precision(requested: CpuPrecision, device: torch.device, native: bool | None = None
                       ) -> TrainingPrecision:
    """The precision a run on ``device`` trains in for ``requested`` (``native``: whether the CPU has native
    bfloat16; default :func:`cpu_has_native_bfloat16`)."""
    if torch.device(device).type == "cuda":
        return TrainingPrecision(requested, "float16", "CUDA: float16 autocast with a gradient scaler "
                                                       "(cpu_precision applies to CPU training only)")
    native = cpu_has_native_bfloat16() if native is None else native
    if requested == "float32":
        return TrainingPrecision(requested, "float32", "float32 as asked")
    if requested == "bfloat16":
        return TrainingPrecision(requested, "bfloat16", "bfloat16 autocast as asked" + (
            "" if native else "; this CPU has no native bfloat16 (AVX512-BF16 / AMX): emulated, slower than float32"))
    if native:
        return TrainingPrecision(requested, "bfloat16", "auto: this CPU computes bfloat16 natively (AVX512-BF16 / "
                                                        "AMX): bfloat16 autocast, weights and optimiser in float32")
    return TrainingPrecision(requested, "float32", "auto: this CPU has no native bfloat16 (AVX512-BF16 / AMX): "
                                                   "float32")
