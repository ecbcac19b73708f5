"""Stop-and-resume equals the uninterrupted run bit for bit; checkpoint writes are atomic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import enot.functional as ef
from enot.models import SearchSpaceModel, build_mobilenet
from enot.optimize import EnotPretrainOptimizer
from enot.utils import load_checkpoint, save_checkpoint

STEPS, STOP = 6, 3


def _space(init_seed: int) -> SearchSpaceModel:
    torch.manual_seed(init_seed)
    model = build_mobilenet(
        ["MIB_k=3_t=3", "MIB_k=5_t=2", "conv1x1-skip"], num_classes=4, blocks_out_channels=[8, 8],
        blocks_count=[1, 1], blocks_stride=[1, 2], in_channels=1, stem_channels=4, stem_out_channels=8,
        last_channels=16, dropout_rate=0.3,  # dropout draws from the global RNG, which must be restored too
    )
    return SearchSpaceModel(model)


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(4, 1, 12, 12, generator=g), torch.randint(0, 4, (4,), generator=g)


def _setup(init_seed: int, sampler: str, seed: int = 7):
    search_space = _space(init_seed)
    search_space.initialize_output_distribution_optimization(_batch(-1)[0])
    optimizer = torch.optim.SGD(search_space.model_parameters(), lr=0.05, momentum=0.9)
    enot_optimizer = EnotPretrainOptimizer(search_space, optimizer, sampler=sampler, seed=seed)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(enot_optimizer, T_max=STEPS)
    return search_space, enot_optimizer, scheduler


def _train(search_space, enot_optimizer, scheduler, steps: range, log: list) -> None:
    for step in steps:
        x, y = _batch(step)
        enot_optimizer.zero_grad()

        def closure():
            loss = nn.functional.cross_entropy(search_space(x), y)
            loss.backward()
            return loss

        log.append((enot_optimizer.step(closure).detach(), enot_optimizer.last_architectures))
        scheduler.step()


def _assert_same(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


@pytest.mark.parametrize("sampler", ["uniform", "fair"])
def test_pretrain_resume_is_bit_identical(tmp_path: Path, sampler: str) -> None:
    torch.manual_seed(123)
    reference, ref_opt, ref_sched = _setup(0, sampler)
    ref_log: list = []
    _train(reference, ref_opt, ref_sched, range(STEPS), ref_log)

    torch.manual_seed(123)
    first, first_opt, first_sched = _setup(0, sampler)
    log: list = []
    _train(first, first_opt, first_sched, range(STOP), log)
    save_checkpoint(tmp_path / "run.pt", first, first_opt, scheduler=first_sched, extra={"step": STOP})
    del first, first_opt, first_sched

    torch.manual_seed(999)  # a different process state: everything must come from the file
    resumed, opt, sched = _setup(1, sampler, seed=8)
    restored = load_checkpoint(tmp_path / "run.pt", resumed, opt, scheduler=sched)
    assert restored.extra == {"step": STOP} and restored.state is None
    _train(resumed, opt, sched, range(restored.extra["step"], STEPS), log)

    assert [arch for _, arch in log] == [arch for _, arch in ref_log]
    for (loss, _), (ref_loss, _) in zip(log, ref_log):
        assert torch.equal(loss, ref_loss)
    _assert_same(resumed, reference)
    assert opt.state_dict()["enot"]["step_count"] == STEPS
    assert torch.equal(opt.state_dict()["enot"]["key"], ref_opt.state_dict()["enot"]["key"])
    assert sched.state_dict() == ref_sched.state_dict()


def test_functional_pretrain_resume(tmp_path: Path) -> None:
    search_space = _space(0)
    search_space.eval()  # no dropout: the functional step takes no global randomness
    trees = ef.split_search_space(search_space)
    apply = ef.make_apply(search_space)
    optimizer = ef.sgd(0.05, momentum=0.9)

    def loss_fn(output, batch):
        return nn.functional.cross_entropy(output, batch[1])

    def run(state, steps):
        for step in steps:
            state, _ = ef.pretrain_step(apply, optimizer, loss_fn, state, [_batch(step)])
        return state

    init = ef.pretrain_init(trees.params, trees.buffers, optimizer, ef.random.key(5))
    reference = run(init, range(STEPS))
    save_checkpoint(tmp_path / "f.pt", state=run(init, range(STOP)), extra={"step": STOP})
    restored = load_checkpoint(tmp_path / "f.pt", state=init)
    assert type(restored.state) is ef.PretrainState
    resumed = run(restored.state, range(restored.extra["step"], STEPS))
    assert int(resumed.step) == STEPS
    for a, b in zip(torch.utils._pytree.tree_leaves(resumed), torch.utils._pytree.tree_leaves(reference)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="template"):
        load_checkpoint(tmp_path / "f.pt", state=(init, init))


def test_enot_entry_is_backward_compatible() -> None:
    search_space, enot_opt, _ = _setup(0, "uniform")
    state = enot_opt.state_dict()
    assert set(state) == {"state", "param_groups", "enot"}
    # A plain torch optimizer reads the dict, ignoring the extra entry ...
    plain = torch.optim.SGD(_space(0).model_parameters(), lr=0.05, momentum=0.9)
    plain.load_state_dict(state)
    # ... and a dict saved without it (a plain optimizer's, or an older enot's) still loads.
    enot_opt.load_state_dict(plain.state_dict())
    assert torch.equal(enot_opt.state_dict()["enot"]["key"], state["enot"]["key"])


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    search_space = _space(0)
    path = tmp_path / "run.pt"
    save_checkpoint(path, search_space, extra={"step": 1})
    good = path.read_bytes()

    real_save = torch.save

    def failing_save(obj, file, *args, **kwargs):
        real_save(obj, file, *args, **kwargs)
        file.write(b"garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, search_space, extra={"step": 2})
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no temporary file left behind
    assert load_checkpoint(path, _space(1)).extra == {"step": 1}


def test_errors(tmp_path: Path) -> None:
    search_space = _space(0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_checkpoint(tmp_path / "missing" / "run.pt", search_space)
    with pytest.raises(TypeError, match="tensor"):
        save_checkpoint(tmp_path / "x.pt", state={"a": 1})
    save_checkpoint(tmp_path / "run.pt", search_space)
    with pytest.raises(ValueError, match="no 'optimizer' entry"):
        load_checkpoint(tmp_path / "run.pt", search_space, torch.optim.SGD(search_space.parameters(), lr=0.1))
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "other.pt", search_space)


def _search_setup(init_seed: int, seed: int, bn_loader: bool, fixed: bool):
    import enot.latency
    from enot.optimize import EnotFixedLatencySearchOptimizer, EnotSearchOptimizer

    search_space = _space(init_seed)
    enot.latency.initialize_latency("mmac", search_space, (_batch(-1)[0],))
    optimizer = torch.optim.Adam(search_space.architecture_parameters(), lr=0.1)
    options = {}
    if bn_loader:
        data = torch.utils.data.TensorDataset(*[torch.cat(t) for t in zip(*(_batch(100 + i) for i in range(5)))])
        options = {"bn_tune_dataloader": torch.utils.data.DataLoader(data, batch_size=4), "bn_tune_batches": 2}
    if fixed:
        bound = 0.5 * (enot.latency.min_latency(search_space) + enot.latency.max_latency(search_space))
        enot_optimizer = EnotFixedLatencySearchOptimizer(search_space, optimizer, bound, seed=seed, **options)
    else:
        enot_optimizer = EnotSearchOptimizer(search_space, optimizer, seed=seed, **options)
    return search_space, enot_optimizer


def _search(search_space, enot_optimizer, steps: range, log: list) -> None:
    for step in steps:
        x, y = _batch(step)
        enot_optimizer.zero_grad()

        def closure():
            loss = nn.functional.cross_entropy(search_space(x), y)
            if hasattr(enot_optimizer, "modify_loss"):
                loss = enot_optimizer.modify_loss(loss)
            loss.backward()  # returns None, as ENOT's tutorials' closures do

        enot_optimizer.step(closure)
        log.append((search_space.forward_architecture, [p.detach().clone() for p in search_space.architecture_parameters()]))


@pytest.mark.parametrize("fixed, bn_loader", [(False, False), (True, False), (True, True)])
def test_search_resume_is_bit_identical(tmp_path: Path, fixed: bool, bn_loader: bool) -> None:
    torch.manual_seed(123)
    reference, ref_opt = _search_setup(0, 7, bn_loader, fixed)
    ref_log: list = []
    _search(reference, ref_opt, range(STEPS), ref_log)

    torch.manual_seed(123)
    first, first_opt = _search_setup(0, 7, bn_loader, fixed)
    log: list = []
    _search(first, first_opt, range(STOP), log)
    save_checkpoint(tmp_path / "search.pt", first, first_opt, extra={"step": STOP})

    torch.manual_seed(999)
    resumed, opt = _search_setup(1, 8, bn_loader, fixed)
    restored = load_checkpoint(tmp_path / "search.pt", resumed, opt)
    _search(resumed, opt, range(restored.extra["step"], STEPS), log)

    assert [a for a, _ in log] == [a for a, _ in ref_log]
    for (_, logits), (_, ref_logits) in zip(log, ref_log):
        assert all(torch.equal(a, b) for a, b in zip(logits, ref_logits))
    _assert_same(resumed, reference)
    assert opt.prepare_validation_model() == ref_opt.prepare_validation_model()
