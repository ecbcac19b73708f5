"""One validator for architectures (issue 12, class 7): every entry point accepts the same inputs,
reads them as the same ``list[int]``, and refuses the rest with the same error type, changing nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import enot.functional as ef
import enot.latency
from enot.models import SearchSpaceModel
from tests.spaces import tiny_mobilenet

torch.manual_seed(0)
_SPACE = SearchSpaceModel(tiny_mobilenet()).eval()
enot.latency.initialize_latency("mmac", _SPACE, (torch.randn(2, 1, 12, 12),))
_TABLE = _SPACE.get_latency_container().table(dtype=torch.float64)
_N = _SPACE.layout.n_choices


def _entry_points():
    """Each entry point as ``architecture -> what it read`` (the architecture it acted on, as list[int])."""

    def sample(a):
        _SPACE.sample(a)
        return _SPACE.forward_architecture

    def latency(a):
        value = ef.architecture_latency(a, _TABLE)
        assert value.dim() == 0
        return value

    def paths(a):
        return ef.path_names(_SPACE.layout, a)

    def selected(a):
        with _SPACE.selected(a):
            return _SPACE.forward_architecture

    return {"sample": sample, "architecture_latency": latency, "path_names": paths, "selected": selected}


def _reference(name: str, ints: list[int]):
    return _entry_points()[name](list(ints))


@st.composite
def valid(draw):
    ints = [draw(st.integers(0, n - 1)) for n in _N]
    form = draw(st.sampled_from(["list", "tuple", "tensor", "int32 tensor", "numpy", "0-d tensors", "numpy ints"]))
    value = {
        "list": lambda: list(ints),
        "tuple": lambda: tuple(ints),
        "tensor": lambda: torch.tensor(ints),
        "int32 tensor": lambda: torch.tensor(ints, dtype=torch.int32),
        "numpy": lambda: np.array(ints),
        "0-d tensors": lambda: [torch.tensor(i) for i in ints],
        "numpy ints": lambda: [np.int64(i) for i in ints],
    }[form]()
    return ints, value


@settings(max_examples=60, deadline=None)
@given(valid())
def test_every_entry_point_reads_valid_forms_as_the_same_list(case):
    ints, value = case
    assert ef.validate_architecture(_N, value, _SPACE.layout.container_names) == ints
    for name, entry in _entry_points().items():
        got, expected = entry(value), _reference(name, ints)
        if isinstance(expected, torch.Tensor):
            assert torch.equal(got, expected), name
        else:
            assert got == expected, name


@st.composite
def invalid(draw):
    ints = [draw(st.integers(0, n - 1)) for n in _N]
    c = draw(st.integers(0, len(_N) - 1))
    kind = draw(st.sampled_from([
        "float", "integral float", "float tensor", "bool", "bool tensor", "negative", "too large", "None entry",
        "string entry", "two-element entry tensor", "too short", "too long", "dict", "None", "int", "string",
        "2-d tensor", "float vector tensor", "set",
    ]))
    bad = list(ints)
    if kind == "float":
        bad[c] = ints[c] + draw(st.floats(0.1, 0.9))
    elif kind == "integral float":
        bad[c] = float(ints[c])
    elif kind == "float tensor":
        bad[c] = torch.tensor(float(ints[c]))
    elif kind == "bool":
        bad[c] = draw(st.booleans())
    elif kind == "bool tensor":
        bad[c] = torch.tensor(True)
    elif kind == "negative":
        bad[c] = draw(st.integers(-5, -1))
    elif kind == "too large":
        bad[c] = _N[c] + draw(st.integers(0, 3))
    elif kind == "None entry":
        bad[c] = None
    elif kind == "string entry":
        bad[c] = str(ints[c])
    elif kind == "two-element entry tensor":
        bad[c] = torch.tensor([ints[c], ints[c]])
    elif kind == "too short":
        bad = ints[:c]
    elif kind == "too long":
        bad = ints + [0] * draw(st.integers(1, 2))
    elif kind == "dict":
        bad = dict(enumerate(ints))
    elif kind == "None":
        bad = None
    elif kind == "int":
        bad = ints[0]
    elif kind == "string":
        bad = "".join(map(str, ints))
    elif kind == "2-d tensor":
        bad = torch.tensor([ints])
    elif kind == "float vector tensor":
        bad = torch.tensor(ints, dtype=torch.float32)
    elif kind == "set":
        bad = set(ints)
    return kind, bad


@settings(max_examples=150, deadline=None)
@given(invalid())
def test_every_entry_point_refuses_the_same_inputs_and_changes_nothing(case):
    kind, bad = case
    with pytest.raises((TypeError, ValueError)) as caught:
        ef.validate_architecture(_N, bad, _SPACE.layout.container_names)
    error = type(caught.value)
    message = str(caught.value)
    assert "architecture" in message, message
    _SPACE.sample([0] * len(_N))
    for name, entry in _entry_points().items():
        with pytest.raises(error):
            entry(bad)
        assert _SPACE.forward_architecture == [0] * len(_N), name  # nothing selected


def test_messages_name_the_container_and_the_allowed_range():
    names = _SPACE.layout.container_names
    with pytest.raises(TypeError, match=rf"entry 1 \({names[1]}\) is 1.7, a float, not an integer \(allowed: an int in 0..{_N[1] - 1}\)"):
        _SPACE.sample([0, 1.7, 0])
    with pytest.raises(TypeError, match=r"a dict.*one index per container"):
        _SPACE.sample({0: 1, 1: 0, 2: 0})
    with pytest.raises(ValueError, match=r"entry 0 is -1, out of range for container 'container 0'"):
        ef.architecture_latency([-1, 0, 0], _TABLE)
    with pytest.raises(TypeError, match=r"entry 0 \(.*\) is True, a bool"):
        ef.path_names(_SPACE.layout, [True, 0, 0])
    with pytest.raises(TypeError, match=r"architecture must be a sequence of ints or a 1-D integer tensor \(one index per container\), got None"):
        _SPACE.sample(None)
    with pytest.raises(TypeError, match=r"got a 2-D torch.int64 tensor"):
        _SPACE.sample(torch.tensor([[0, 0, 0]]))
    _SPACE.sample([[1], [0], [1]])  # ENOT's old form, one index per entry, still read
    assert _SPACE.forward_architecture == [1, 0, 1]
