"""Fixtures shared by the tests; the spaces themselves live in `spaces.py`."""

from __future__ import annotations

import pytest
import torch

from enot.models import SearchSpaceModel
from tests._torchvision_compat import define_torchvision_op_schemas
from tests.spaces import Nested, tiny_mobilenet  # noqa: F401  (re-exported for `from conftest import ...`)

define_torchvision_op_schemas()  # before any test imports torchvision


@pytest.fixture
def mobilenet_space() -> SearchSpaceModel:
    torch.manual_seed(0)
    return SearchSpaceModel(tiny_mobilenet())


@pytest.fixture
def nested_space() -> SearchSpaceModel:
    torch.manual_seed(0)
    return SearchSpaceModel(Nested())
