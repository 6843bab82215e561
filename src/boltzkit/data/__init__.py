"""Data: loaders (IDX, MNIST, binarized MNIST, scikit-learn's digits, user arrays), checksums and
downloads (:mod:`boltzkit.data.loaders`), elementary transforms (:mod:`boltzkit.data.transforms`)
and the one data-preparation record, :class:`Preparation` (:mod:`boltzkit.data.preparation`):
how raw data become a model's visible states and back, stored in every model file.

Everything is importable from ``boltzkit.data`` itself. Tests that replace a loader's internals
(e.g. the downloader ``_download_to``) patch them in :mod:`boltzkit.data.loaders`, where they are
looked up.
"""

from . import loaders, preparation, transforms
from .loaders import (BINARIZED_MNIST_MD5, BINARIZED_MNIST_ROWS, BINARIZED_MNIST_SHA1,
                      BINARIZED_MNIST_URL, DATASETS, DIGITS_N_TRAIN, DOWNLOAD_TIMEOUT_S,
                      MNIST_FILES, MNIST_MD5, MNIST_MIRRORS, MNIST_SHA256, SPLITS, Dataset,
                      DataUnavailableError, _file_key, _parse_amat, _VERIFIED, data_dir,
                      load_dataset, read_idx)
from .preparation import BINARIZE_METHODS, Preparation
from .transforms import as_tensor, binarize, standardize, to_spin

__all__ = [
    *loaders.__all__,
    "binarize",
    "standardize",
    "to_spin",
    "as_tensor",
    "Preparation",
    "BINARIZE_METHODS",
]
