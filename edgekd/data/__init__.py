"""Datasets as in-memory arrays: NCHW float32 in [0, 1] before normalisation, int64 labels."""
from edgekd.data.datasets import Dataset, Split, load_dataset

__all__ = ["Dataset", "Split", "load_dataset"]
