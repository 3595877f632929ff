"""Inference over a split goes in batches bounded by their input bytes, not only by a sample count: activations grow
with the batch and the runtimes' allocators keep the largest one's, so 256 (onnxruntime) or 1024 (torch) images at
3x224x224 per call made a mid-size CNN's ship peak at ~11 GB. Small inputs keep their large batches."""
import numpy as np
import pytest

from edgekd.core.metrics import BATCH_BYTES, predict


class BigImages:
    """An image split's array-like (as data.images.LazyImages): shape and dtype, rows made only when sliced."""

    dtype = np.dtype(np.float32)

    def __init__(self, count: int, sample_shape=(3, 224, 224)):
        self.shape = (count, *sample_shape)
        self.batches: list[int] = []

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: slice) -> np.ndarray:
        rows = len(range(*key.indices(len(self))))
        self.batches.append(rows)
        return np.full((rows, *self.shape[1:]), 0.5, np.float32)


def _bytes(rows: int, x: BigImages) -> int:
    return rows * int(np.prod(x.shape[1:])) * 4


def test_onnx_style_predict_bounds_each_batch_by_bytes():
    x = BigImages(300)

    logits = predict(lambda batch: batch.reshape(len(batch), -1)[:, :10], x)

    assert logits.shape == (300, 10)
    assert sum(x.batches) == 300
    assert max(_bytes(rows, x) for rows in x.batches) <= BATCH_BYTES


def test_small_inputs_keep_large_batches():
    x = BigImages(600, (1, 8, 8))

    predict(lambda batch: batch.reshape(len(batch), -1), x)

    assert x.batches[0] == 256


def test_torch_predict_logits_bounds_each_batch_by_bytes():
    torch = pytest.importorskip("torch")
    from edgekd.train.trainer import predict_logits

    x = BigImages(100)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 10))

    logits = predict_logits(model, x)

    assert logits.shape == (100, 10)
    assert sum(x.batches) == 100 and max(_bytes(rows, x) for rows in x.batches) <= BATCH_BYTES
