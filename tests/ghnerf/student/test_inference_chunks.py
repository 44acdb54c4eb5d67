"""The evaluation path's chunks: their size (cache-sized on CPU, memory-sized on a GPU) and that the view
rendered in chunks is the view rendered in one call."""

import torch

from ghnerf.student.config import preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.inference import CPU_POINT_VIEWS, MIN_CHUNK, ray_chunk, render_full_view
from ghnerf.student.model import GHNeRF


def test_cpu_chunks_hold_the_same_number_of_point_views():
    cpu = torch.device("cpu")
    assert ray_chunk(2, 2, cpu) == CPU_POINT_VIEWS // 4
    assert ray_chunk(4, 2, cpu) == CPU_POINT_VIEWS // 8 == ray_chunk(2, 4, cpu)
    assert ray_chunk(4, 3, cpu) * 12 <= CPU_POINT_VIEWS < (ray_chunk(4, 3, cpu) + 1) * 12
    assert ray_chunk(10**6, 3, cpu) == MIN_CHUNK
    assert ray_chunk(4, 2, cpu, free_bytes=10**12) == ray_chunk(4, 2, cpu)  # memory does not decide on CPU


def test_gpu_chunks_grow_with_free_memory():
    gpu = torch.device("cuda")  # free memory given: no device is touched
    small, large = ray_chunk(4, 2, gpu, free_bytes=2**30), ray_chunk(4, 2, gpu, free_bytes=2**33)
    assert large == 8 * small
    assert small * 4 * 2 * 2048 <= 2**30 * 0.5  # within its share of the free memory
    assert ray_chunk(2, 2, gpu, free_bytes=2**30) == 2 * small  # half the samples: twice the rays
    assert ray_chunk(4, 2, gpu, free_bytes=0) == MIN_CHUNK


def test_chunked_evaluation_equals_one_call(student_root):
    torch.manual_seed(0)
    model = GHNeRF(preset("ghnerf-resnet18", pretrained="none")).eval()
    ex = ExampleSet(student_root, "train", image_scale=0.5).example(0)
    cpu = torch.device("cpu")
    one = render_full_view(model, ex, cpu, chunk=10**9)
    with torch.no_grad():
        encoding = model.encode(ex.batch)
    rays = int(one["box"].sum())
    assert rays > 3 * 97
    for chunk in (None, 97):  # the default and an odd size that leaves a short last chunk
        part = render_full_view(model, ex, cpu, chunk=chunk, encoding=encoding)
        torch.testing.assert_close(part["rgb"], one["rgb"], atol=1e-6, rtol=0)
        torch.testing.assert_close(part["heatmaps"], one["heatmaps"], atol=1e-6, rtol=0)
        torch.testing.assert_close(part["depth"], one["depth"], atol=1e-5, rtol=0)
