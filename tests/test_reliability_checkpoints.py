"""Issue 12, class 3: checkpoints never replace a good file by a bad one, and a failed load changes nothing."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from enot.models import SearchSpaceModel, build_mobilenet
from enot.optimize import EnotPretrainOptimizer
from enot.utils import load_checkpoint, save_checkpoint
from tests._unchanged import assert_unchanged, snapshot


def _space(seed: int = 0, width: int = 8) -> SearchSpaceModel:
    torch.manual_seed(seed)
    model = build_mobilenet(
        ["MIB_k=3_t=3", "conv1x1-skip"], num_classes=4, blocks_out_channels=[width], blocks_count=[2],
        blocks_stride=[1], in_channels=1, stem_channels=4, stem_out_channels=8, last_channels=16,
    )
    return SearchSpaceModel(model)


_RUNS: dict = {}


def _objects(seed: int, width: int):
    ss = _space(seed, width)
    opt = EnotPretrainOptimizer(ss, torch.optim.SGD(ss.model_parameters(), lr=0.1, momentum=0.9), seed=seed)
    return ss, opt, torch.optim.lr_scheduler.StepLR(opt, step_size=3)


def _run(seed: int = 0, width: int = 8):
    """A search space, its pretrain optimizer and scheduler after two steps (momentum state set), a fresh copy."""
    if (seed, width) not in _RUNS:
        ss, opt, sched = _objects(seed, width)
        x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 4, (4,))
        ss.initialize_output_distribution_optimization(x)
        for _ in range(2):
            opt.zero_grad()

            def closure():
                loss = nn.functional.cross_entropy(ss(x), y)
                loss.backward()
                return loss

            opt.step(closure)
            sched.step()
        opt.zero_grad()
        _RUNS[seed, width] = copy.deepcopy((ss.state_dict(), opt.state_dict(), sched.state_dict()))
    rng = torch.get_rng_state()
    ss, opt, sched = _objects(seed, width)
    states = copy.deepcopy(_RUNS[seed, width])
    ss.load_state_dict(states[0])
    opt.load_state_dict(states[1])
    sched.load_state_dict(states[2])
    torch.set_rng_state(rng)
    return ss, opt, sched


@pytest.fixture
def good(tmp_path: Path) -> Path:
    ss, opt, sched = _run(1)
    path = tmp_path / "run.pt"
    save_checkpoint(path, ss, opt, scheduler=sched, extra={"epoch": 3})
    return path


def _folder_is_clean(path: Path) -> bool:
    return sorted(p.name for p in path.parent.iterdir()) == [path.name]


# ------------------------------------------------------------------------------------------ save
def test_save_refuses_extras_that_do_not_load_back(good: Path) -> None:
    ss, opt, _ = _run(2)
    before = snapshot(files=[good])
    with pytest.raises(TypeError, match=r"extra\['loss'\] is a numpy.float64.*weights_only=True.*float\(x\)"):
        save_checkpoint(good, ss, opt, extra={"loss": np.float64(0.5)})
    with pytest.raises(TypeError, match=r"extra\['hist'\]\[1\] is a numpy.ndarray"):
        save_checkpoint(good, ss, extra={"hist": [1.0, np.zeros(2)]})
    with pytest.raises(TypeError, match="extra must be a dict"):
        save_checkpoint(good, ss, extra=[("epoch", 1)])
    assert_unchanged(before)
    assert _folder_is_clean(good)
    assert load_checkpoint(good, _space(), restore_rng=False).extra == {"epoch": 3}


class _NumpyScheduler:
    """A scheduler whose state dict holds a numpy scalar: torch.save writes it, weights_only loading refuses it."""

    def state_dict(self) -> dict:
        return {"last_epoch": np.int64(3)}


def test_save_verifies_with_the_loader_before_replacing(good: Path) -> None:
    ss = _space()
    before = snapshot(files=[good])
    with pytest.raises(ValueError, match=r"run.pt.*torch.load\(weights_only=True\) refuses.*numpy.*left unchanged"):
        save_checkpoint(good, ss, scheduler=_NumpyScheduler())
    assert_unchanged(before)
    assert _folder_is_clean(good)


def test_save_refuses_a_file_that_reads_back_different(good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_save = torch.save

    def corrupting_save(obj, file, *args, **kwargs):  # flips one weight between memory and disk
        obj = {**obj, "model": {k: v.clone() for k, v in obj["model"].items()}}
        obj["model"]["architecture_logits.0"] += 1.0
        real_save(obj, file, *args, **kwargs)

    ss = _space()
    before = snapshot(files=[good])
    monkeypatch.setattr(torch, "save", corrupting_save)
    with pytest.raises(ValueError, match=r"checkpoint\['model'\]\['architecture_logits.0'\] does not read back equal"):
        save_checkpoint(good, ss)
    monkeypatch.undo()
    assert_unchanged(before)
    assert _folder_is_clean(good)


def test_save_keeps_nan_weights(tmp_path: Path) -> None:
    """Verification compares bit for bit with NaN equal to NaN: a model holding NaN saves (and loads)."""
    ss = _space()
    with torch.no_grad():
        next(ss.model_parameters()).view(-1)[0] = float("nan")
    save_checkpoint(tmp_path / "nan.pt", ss, extra={"x": float("nan")})
    other = _space(5)
    load_checkpoint(tmp_path / "nan.pt", other, restore_rng=False)
    assert torch.isnan(next(other.model_parameters()).view(-1)[0])


_WRITER = textwrap.dedent(
    """
    import io, sys, time, torch
    from enot.models import SearchSpaceModel, build_mobilenet
    from enot.utils import save_checkpoint
    real_save = torch.save

    def half_then_hang(obj, file, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        file.write(data[: len(data) // 2])
        file.flush()
        print("HALF", flush=True)
        time.sleep(120)
        file.write(data[len(data) // 2 :])

    torch.save = half_then_hang
    model = build_mobilenet(["MIB_k=3_t=3", "conv1x1-skip"], num_classes=4, blocks_out_channels=[8],
        blocks_count=[2], blocks_stride=[1], in_channels=1, stem_channels=4, stem_out_channels=8, last_channels=16)
    save_checkpoint(sys.argv[1], SearchSpaceModel(model), extra={"epoch": 99})
    """
)


def test_killed_writer_leaves_the_old_file_byte_for_byte(good: Path) -> None:
    before = good.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(good)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        line = writer.stdout.readline()  # the writer has put half the new checkpoint on disk
        assert line.strip() == "HALF", writer.stderr.read()
        temps = [p for p in good.parent.iterdir() if p.name != good.name]
        assert len(temps) == 1 and temps[0].name.startswith(".run.pt.") and temps[0].stat().st_size > 0
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    assert good.read_bytes() == before
    assert load_checkpoint(good, _space(), restore_rng=False).extra == {"epoch": 3}
    # The half-written temporary file is not a checkpoint and says so.
    temp = next(p for p in good.parent.iterdir() if p.name != good.name)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_checkpoint(temp, _space())


# ------------------------------------------------------------------------------------------ load
def _corrupt(kind: str, data: bytes) -> bytes:
    return {
        "empty": b"",
        "zeroed": bytes(len(data)),
        "truncated": data[: len(data) // 2],
        "garbage": bytes(range(256)) * 8,
        "text": b"epoch,loss\n1,0.5\n" * 20,
        "one byte short": data[:-1],
    }[kind]


_PROBLEM = {
    "empty": "the file is empty",
    "zeroed": "only zero bytes",
    "truncated": "truncated or corrupt",
    "garbage": "not a torch.save archive",
    "text": "not a torch.save archive",
    "one byte short": "truncated or corrupt",
}


@pytest.mark.parametrize("kind", sorted(_PROBLEM))
def test_unreadable_file_is_one_error_naming_file_and_problem(good: Path, kind: str) -> None:
    bad = good.with_name(f"bad {kind}.pt")
    bad.write_bytes(_corrupt(kind, good.read_bytes()))
    ss, opt, sched = _run(4)
    before = snapshot(ss, opt, files=[bad], sched=sched.state_dict())
    with pytest.raises(ValueError) as caught:
        load_checkpoint(bad, ss, opt, scheduler=sched)
    message = str(caught.value)
    assert repr(str(bad)) in message and _PROBLEM[kind] in message, message
    assert_unchanged(before, ss, opt, sched=sched.state_dict())


def test_file_with_objects_the_safe_loader_refuses(tmp_path: Path) -> None:
    bad = tmp_path / "numpy.pt"
    torch.save({"format": "enot-checkpoint", "version": 1, "extra": {"x": np.float64(1)}}, bad)
    with pytest.raises(ValueError, match=r"numpy.pt.*refuses"):
        load_checkpoint(bad)


def test_missing_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.pt' does not exist"):
        load_checkpoint(tmp_path / "nothing.pt")
    with pytest.raises(ValueError, match="is not a file"):
        load_checkpoint(tmp_path)


def _edited(good: Path, edit) -> Path:
    payload = torch.load(good, weights_only=True)
    edit(payload)
    path = good.with_name("edited.pt")
    torch.save(payload, path)
    return path


def _set(*keys, value):
    def edit(payload):
        target = payload
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


def _delete(*keys):
    def edit(payload):
        target = payload
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return edit


_BAD_ENTRIES = {
    "no optimizer": (_delete("optimizer"), "holds no 'optimizer' entry"),
    "no scheduler": (_delete("scheduler"), "holds no 'scheduler' entry"),
    "model key missing": (_delete("model", "architecture_logits.0"), "lacks 1 of the model's keys"),
    "model key extra": (_set("model", "stowaway", value=torch.zeros(1)), "keys the model does not"),
    "model shape": (_set("model", "architecture_logits.1", value=torch.zeros(5)), r"architecture_logits.1: saved \(5,\), model \(2,\)"),
    "architecture range": (_set("architecture", value=[0, 7]), "architecture does not fit.*out of range"),
    "architecture length": (_set("architecture", value=[0]), "architecture does not fit.*1 entries"),
    "optimizer groups": (_set("optimizer", "param_groups", value=[]), "0 parameter groups, the optimizer 1"),
    "optimizer group size": (
        lambda p: p["optimizer"]["param_groups"][0]["params"].pop(), "group 0 holds .* parameters, the optimizer's"
    ),
    "optimizer state shape": (
        lambda p: p["optimizer"]["state"][0].__setitem__("momentum_buffer", torch.zeros(3, 3)),
        "'momentum_buffer' of parameter 0 of group 0 has shape \\(3, 3\\)",
    ),
    "enot key shape": (_set("optimizer", "enot", "key", value=torch.zeros(3, dtype=torch.int64)), "'key' must be"),
    "enot key float": (_set("optimizer", "enot", "key", value=torch.zeros(2)), "'key' must be an integer tensor"),
    "enot step string": (_set("optimizer", "enot", "step_count", value="7"), "'step_count' must be a non-negative int"),
    "enot unknown key": (_set("optimizer", "enot", "bogus", value=1), "keys \\['bogus'\\]"),
    "scheduler class": (_set("scheduler", value={"T_max": 3, "last_epoch": 0}), "scheduler state does not fit"),
    "rng": (_set("rng", "torch", value=torch.zeros(3, dtype=torch.uint8)), "random-generator states do not restore"),
    "extra": (_set("extra", value=[1, 2]), "'extra' entry is a list"),
    "version": (_set("version", value=99), "format version 99"),
    "format": (_set("format", value="other"), "not a checkpoint written by enot"),
}


@pytest.mark.parametrize("case", sorted(_BAD_ENTRIES))
def test_invalid_entry_changes_nothing(good: Path, case: str) -> None:
    edit, message = _BAD_ENTRIES[case]
    path = _edited(good, edit)
    ss, opt, sched = _run(4)
    ss.sample([1, 0])
    before = snapshot(ss, opt, files=[path], sched=sched.state_dict())
    with pytest.raises(ValueError, match=message) as caught:
        load_checkpoint(path, ss, opt, scheduler=sched)
    assert "edited.pt" in str(caught.value)
    assert_unchanged(before, ss, opt, sched=sched.state_dict())


def test_state_template_mismatch_changes_nothing(good: Path) -> None:
    ss, opt, sched = _run(4)
    before = snapshot(ss, opt)
    with pytest.raises(ValueError, match="holds no 'state' entry"):
        load_checkpoint(good, ss, opt, state={"w": torch.zeros(2)})
    assert_unchanged(before, ss, opt)


def test_model_of_another_width_changes_nothing(good: Path) -> None:
    ss, opt, sched = _run(4, width=12)
    before = snapshot(ss, opt)
    with pytest.raises(ValueError, match="tensors of another shape|lacks .* of the model's keys"):
        load_checkpoint(good, ss, opt, scheduler=sched)
    assert_unchanged(before, ss, opt)


def test_failure_while_applying_puts_everything_back(good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation passed, then the last object refuses: the model, optimizer and RNG loaded before it are rolled back."""
    ss, opt, sched = _run(4)
    before = snapshot(ss, opt, sched=sched.state_dict())

    def refuse(self, state_dict):
        raise RuntimeError("scheduler refuses")

    monkeypatch.setattr(type(sched), "load_state_dict", refuse)
    with pytest.raises(RuntimeError, match="scheduler refuses"):
        load_checkpoint(good, ss, opt, scheduler=sched)
    assert_unchanged(before, ss, opt, sched=sched.state_dict())


def test_enot_optimizer_load_state_dict_validates_before_loading() -> None:
    """The wrapped optimizer is not loaded when the "enot" entry is bad (class 4's first half)."""
    _, source, _ = _run(1)
    ss, opt, _ = _run(4)
    before = snapshot(ss, opt)
    state = source.state_dict()
    for bad, message in [
        ({**state["enot"], "key": torch.zeros(4, dtype=torch.int64)}, "'key' must be"),
        ({**state["enot"], "step_count": "3"}, "'step_count' must be"),
        ("not a dict", "must be a dict"),
    ]:
        with pytest.raises((TypeError, ValueError), match=message):
            opt.load_state_dict({**state, "enot": bad})
        assert_unchanged(before, ss, opt)


def test_round_trip_still_exact(good: Path) -> None:
    ss, opt, sched = _run(1)
    other, other_opt, other_sched = _run(4)
    load_checkpoint(good, other, other_opt, scheduler=other_sched)
    assert_unchanged(snapshot(ss, opt, sched=sched.state_dict()), other, other_opt, sched=other_sched.state_dict())
