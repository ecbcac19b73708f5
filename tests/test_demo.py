"""`enot demo`: end to end on a tiny setting, every promised file, the bound, bad arguments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from enot.__main__ import main

pytest.importorskip("sklearn", reason="the demo needs the demo extra")
pytest.importorskip("matplotlib", reason="the demo needs the demo extra")

TINY = [
    "--pretrain-epochs", "1", "--search-epochs", "1", "--tune-epochs", "1", "--samples", "2",
    "--bn-batches", "1", "--batch-size", "128", "--no-progress",
]


def _onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    output_dir = tmp_path_factory.mktemp("demo") / "out"  # created by the demo
    assert main(["demo", "--output-dir", str(output_dir), "--seed", "3", *TINY]) == 0
    return output_dir, json.loads((output_dir / "report.json").read_text())


def test_writes_every_file(tiny_run) -> None:
    output_dir, report = tiny_run
    expected = {"model.pt", "latency_container.json", "report.json", "architecture_probabilities.png",
                "latency_vs_accuracy.png"} | ({"model.onnx"} if _onnx_available() else set())
    assert expected <= {p.name for p in output_dir.iterdir()}
    assert set(report["files"]) >= {"model", "latency", "report", "probabilities_plot", "latency_accuracy_plot"}
    for name in ("architecture_probabilities.png", "latency_vs_accuracy.png"):
        assert (output_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import enot.latency

    container = enot.latency.SearchSpaceLatencyContainer.load_from_file(output_dir / "latency_container.json")
    assert container.latency_type == "mmac"


def test_report_is_within_the_bound(tiny_run) -> None:
    _, report = tiny_run
    bound = report["max_latency_value"]
    assert report["min_latency"] <= bound <= report["max_latency"]
    for entry in ("searched", "baseline"):
        assert report[entry]["latency"] <= bound + 1e-12 and report[entry]["within_bound"]
        assert 0.0 <= report[entry]["test_accuracy"] <= 1.0
        assert len(report[entry]["architecture"]) == len(report["final_probabilities"]) == 5
    assert len(report["sampled_architectures"]) == 2
    assert report["settings"]["seed"] == 3


def test_portable_model_matches_the_reported_architecture(tiny_run) -> None:
    output_dir, _ = tiny_run
    model = torch.load(output_dir / "model.pt", weights_only=False).eval()
    assert not any(type(m).__module__.startswith("enot") for m in model.modules())
    assert model(torch.rand(4, 1, 8, 8)).shape == (4, 10)


def test_same_seed_same_run(tiny_run, tmp_path: Path) -> None:
    _, first = tiny_run
    assert main(["demo", "--output-dir", str(tmp_path), "--seed", "3", "--no-onnx", *TINY]) == 0
    second = json.loads((tmp_path / "report.json").read_text())
    for key in ("searched", "baseline", "final_probabilities", "sampled_architectures", "max_latency_value"):
        assert second[key] == first[key], key


def test_explicit_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--output-dir", str(tmp_path), "--max-latency", "0.05", "--no-onnx", *TINY]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["max_latency_value"] == 0.05
    assert report["searched"]["latency"] <= 0.05 and report["baseline"]["latency"] <= 0.05
    out = capsys.readouterr().out
    assert "searched architecture" in out and "random within bound" in out and "bound 0.0500" in out


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["demo", "--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["demo", "--max-latency", "0.001"], "below the minimum latency of the search space"),
        (["demo", "--max-latency", "-1"], "expected a positive finite number"),
        (["demo", "--pretrain-epochs", "0"], "expected an integer >= 1"),
        (["demo", "--seed", "x"], "expected an integer"),
        (["demo", "--latency-fraction", "1.5"], "expected a number in (0, 1]"),
        ([], "give a command"),
        (["train"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments, message) -> None:
    if arguments[:1] == ["demo"]:
        arguments = [*arguments, "--output-dir", str(tmp_path / "out")]
    assert main(arguments) == 2
    assert message in capsys.readouterr().err


def test_unwritable_output_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["demo", "--output-dir", str(blocker / "out"), *TINY]) == 2
    assert "is not a writable folder" in capsys.readouterr().err


def test_module_entry_point_help() -> None:
    done = subprocess.run([sys.executable, "-m", "enot", "demo", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for option in ("--output-dir", "--seed", "--max-latency", "--latency-fraction", "--pretrain-epochs",
                   "--search-epochs", "--tune-epochs", "--batch-size", "--samples", "--bn-batches",
                   "--threads", "--no-onnx", "--no-progress"):
        assert option in done.stdout
    bad = subprocess.run([sys.executable, "-m", "enot", "demo", "--bogus"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unrecognized arguments" in bad.stderr
