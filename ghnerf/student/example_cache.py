"""Training examples kept in memory between steps: an LRU over :meth:`ExampleSet.example`, bounded in megabytes.

Building an example reads and decodes the target and source images and draws its heatmaps; a training run draws
the same items again and again (every item about ``steps / len(examples)`` times), and an example is the same
every time it is built, so a cached one gives exactly what a fresh one would.
"""

import dataclasses
from collections import OrderedDict

import numpy as np
import torch

from ghnerf.student.data import Example, ExampleSet
from ghnerf.student.model_io import SourcePhotos

MB = 2**20


def example_bytes(ex: Example) -> int:
    """Bytes of an example's tensors and arrays (its batch's included)."""
    parts = [getattr(ex, f.name) for f in dataclasses.fields(ex)]
    parts += [getattr(ex.batch, f.name) for f in dataclasses.fields(ex.batch)]
    return sum(p.nbytes for p in parts if isinstance(p, torch.Tensor | np.ndarray | SourcePhotos))


class ExampleCache:
    """``examples.example(index, source_views)``, the most recently used ones kept while they fit in ``megabytes``
    (keyed by both: a training mix of source-view counts builds an item once per count).

    Callers must not modify an example in place (training and evaluation never do).
    """

    def __init__(self, examples: ExampleSet, megabytes: int | float):
        self.examples, self.capacity = examples, int(megabytes * MB)
        self._kept: OrderedDict[tuple[int, int | None], Example] = OrderedDict()
        self.bytes = self.hits = self.misses = 0

    def example(self, index: int, source_views: int | None = None) -> Example:
        key = (index, source_views)
        ex = self._kept.get(key)
        if ex is not None:
            self._kept.move_to_end(key)
            self.hits += 1
            return ex
        self.misses += 1
        ex = self.examples.example(index, source_views)
        size = example_bytes(ex)
        if size <= self.capacity:
            while self.bytes + size > self.capacity:
                self.bytes -= example_bytes(self._kept.popitem(last=False)[1])
            self._kept[key] = ex
            self.bytes += size
        return ex
