"""Export of an extracted network: torch.save without enot, TorchScript, ONNX against onnxruntime."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from enot.models import SearchSpaceModel, SearchVariantsContainer
from enot.utils import make_portable


def _network(space: SearchSpaceModel, architecture: list[int]) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    space.sample(architecture)
    space.train()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for _ in range(3):
            space(torch.randn(8, 1, 16, 16, generator=g))
    return space.get_network_by_indexes(architecture).eval()


def _run_without_enot(tmp_path: Path, body: str) -> str:
    """Runs ``body`` in a fresh interpreter in which ``import enot`` fails."""
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, "")
        sys.modules["enot"] = None  # any attempt to import enot now raises ImportError
        try:
            import enot  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("enot is importable")
        import torch
        """
    ) + textwrap.dedent(body)
    # The user's own code (here: files in tmp_path) stays importable; only enot is hidden.
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


USER_MODULE = """
import torch
from torch import nn


class Residual(nn.Module):
    \"\"\"A user's own module with a custom forward (its file does not import enot).\"\"\"

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)) + x)
"""


def _user_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SearchSpaceModel:
    (tmp_path / "user_model_for_export.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_model_for_export", raising=False)
    from user_model_for_export import Residual

    torch.manual_seed(0)
    inner = SearchVariantsContainer([nn.Conv2d(4, 4, 3, padding=1), nn.Identity()])
    body = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4),
        SearchVariantsContainer([nn.Sequential(inner, nn.BatchNorm2d(4)), nn.Conv2d(4, 4, 5, padding=2)]),
    )
    return SearchSpaceModel(nn.Sequential(nn.Conv2d(1, 1, 1), Residual(body)))


@pytest.mark.parametrize("space_name, architecture", [("mobilenet_space", [0, 1, 2]), ("user", [0, 0])])
def test_saved_portable_model_loads_without_enot(
    request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, space_name: str, architecture
) -> None:
    space = _user_space(tmp_path, monkeypatch) if space_name == "user" else request.getfixturevalue(space_name)
    network = _network(space, architecture)
    assert not any(type(m).__module__.startswith("enot") for m in network.modules())
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        expected = network(x)
    torch.save(network, tmp_path / "model.pt")
    torch.save({"x": x, "expected": expected}, tmp_path / "io.pt")
    out = _run_without_enot(
        tmp_path,
        """
        model = torch.load("model.pt", weights_only=False).eval()
        io = torch.load("io.pt")
        with torch.no_grad():
            print(float((model(io["x"]) - io["expected"]).abs().max()))
        """,
    )
    assert float(out) <= 1e-6


def test_make_portable_of_a_model_with_enot_modules_pickles(mobilenet_space) -> None:
    # The extracted MobileNet holds enot's ready-made ops; make_portable turns them into GraphModules
    # that pickle (string type annotations would break it) and keep their parameter names.
    network = mobilenet_space.get_network_by_indexes([0, 1, 2])
    again = make_portable(network)
    assert again.state_dict().keys() == network.state_dict().keys()
    torch.save(again, __import__("io").BytesIO())


def test_torchscript_loads_without_enot(mobilenet_space, tmp_path: Path) -> None:
    network = _network(mobilenet_space, [2, 0, 1])
    x = torch.randn(3, 1, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
        scripted = torch.jit.script(network)
    with torch.no_grad():
        assert torch.allclose(scripted(x), network(x), atol=1e-6)
        expected = network(x)
    scripted.save(str(tmp_path / "model.ts"))
    torch.save({"x": x, "expected": expected}, tmp_path / "io.pt")
    out = _run_without_enot(
        tmp_path,
        """
        import warnings
        warnings.simplefilter("ignore")
        model = torch.jit.load("model.ts")
        io = torch.load("io.pt")
        with torch.no_grad():
            print(float((model(io["x"]) - io["expected"]).abs().max()))
        """,
    )
    assert float(out) <= 1e-6


def test_onnx_agrees_with_onnxruntime(mobilenet_space, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="install the onnx extra: pip install enot-open-nas[onnx]")
    ort = pytest.importorskip("onnxruntime", reason="install the onnx extra: pip install enot-open-nas[onnx]")
    pytest.importorskip("onnxscript", reason="install the onnx extra: pip install enot-open-nas[onnx]")
    network = _network(mobilenet_space, [0, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network, (torch.randn(2, 1, 16, 16),), str(tmp_path / "model.onnx"), dynamo=True,
            dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False,
        )
    onnx.checker.check_model(onnx.load(str(tmp_path / "model.onnx")))
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 1, 16, 16)  # another batch size than at export
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = network(x).numpy()
    assert got.shape == expected.shape
    assert abs(got - expected).max() <= 1e-4
