import os
from pathlib import Path

import pytest
import torch

DATA = os.environ.get("BOLTZKIT_DATA")
if DATA:  # CI passes a relative path; tests that change folder must still find the data
    DATA = os.environ["BOLTZKIT_DATA"] = os.path.abspath(DATA)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def data_dir():
    """The shared data folder, or skip when BOLTZKIT_DATA is not set (README: tests set it)."""
    if not DATA or not Path(DATA).is_dir():
        pytest.skip("BOLTZKIT_DATA not set to the data folder")
    return Path(DATA)
