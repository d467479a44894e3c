"""Datasets (uint8 in memory), preprocessing and batched augmentation."""

from nin.data.dataset import Dataset, stratified_split
from nin.data.preprocess import Preprocessor, build_preprocessor, preprocessor_from_state
from nin.data.registry import dataset_info, list_datasets, load_dataset

__all__ = [
    "Dataset",
    "Preprocessor",
    "build_preprocessor",
    "dataset_info",
    "list_datasets",
    "load_dataset",
    "preprocessor_from_state",
    "stratified_split",
]
