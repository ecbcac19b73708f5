"""`generate_pruned_search_variants_model`: a search space made from the blocks of a trained model."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn

from enot.autogeneration._analysis import BlockAnalysis, analyse_block
from enot.autogeneration._parameters import TransformationParameters
from enot.autogeneration._transform import CandidateSpec, build_candidate, channel_order, kept_count, new_kernel_padding
from enot.models import SearchVariantsContainer

__all__ = ["generate_pruned_search_variants_model"]

_DEFAULT_DESCRIPTORS = tuple(TransformationParameters(width_mult=w) for w in (1.0, 0.75, 0.5, 0.25, 0.0))


@dataclass
class _Block:
    name: str
    module: nn.Module
    analysis: BlockAnalysis
    stage_position: int = 0
    stage_length: int = 1

    @property
    def residual(self) -> bool:
        return self.analysis.residual_add is not None


class _Finder:
    """Finds the blocks of a model, top-down, remembering why other modules were not blocks."""

    def __init__(self, excluded_ids: set[int], excluded_types: tuple[type, ...]) -> None:
        self.excluded_ids = excluded_ids
        self.excluded_types = excluded_types
        self._analyses: dict[int, BlockAnalysis] = {}
        self._residual_inside: dict[int, bool] = {}
        self._excluded_inside: dict[int, bool] = {}
        self.reasons: dict[str, str] = {}
        self.blocks: list[_Block] = []

    def excluded(self, module: nn.Module) -> bool:
        return (
            id(module) in self.excluded_ids
            or isinstance(module, self.excluded_types)
            or isinstance(module, SearchVariantsContainer)
        )

    def analysis(self, module: nn.Module) -> BlockAnalysis:
        key = id(module)
        if key not in self._analyses:
            if next(module.parameters(), None) is None:
                self._analyses[key] = BlockAnalysis(error="it has no weights")
            else:
                self._analyses[key] = analyse_block(module)
        return self._analyses[key]

    def is_residual(self, module: nn.Module) -> bool:
        analysis = self.analysis(module)
        return analysis.error is None and analysis.residual_add is not None

    def residual_inside(self, module: nn.Module) -> bool:
        key = id(module)
        if key not in self._residual_inside:
            self._residual_inside[key] = any(
                self.is_residual(child) or self.residual_inside(child) for child in module.children()
            )
        return self._residual_inside[key]

    def excluded_inside(self, module: nn.Module) -> bool:
        key = id(module)
        if key not in self._excluded_inside:
            self._excluded_inside[key] = any(
                self.excluded(child) or self.excluded_inside(child) for child in module.children()
            )
        return self._excluded_inside[key]

    def walk(self, module: nn.Module, name: str, parent: nn.Module | None) -> None:
        if self.excluded(module):
            return
        if parent is not None:
            reason = self._block_reason(module, parent)
            if reason is None:
                self.blocks.append(_Block(name, module, self.analysis(module)))
                return
            self.reasons[name] = reason
        for child_name, child in module.named_children():
            self.walk(child, f"{name}.{child_name}" if name else child_name, module)

    def _block_reason(self, module: nn.Module, parent: nn.Module) -> str | None:
        """``None`` when ``module`` is a block, else why not."""
        if self.excluded_inside(module):
            return "it contains an excluded module"
        analysis = self.analysis(module)
        if analysis.error is not None:
            return analysis.error
        if analysis.residual_add is not None:
            return None
        if not analysis.groups and not analysis.depthwise:
            return "no inner channels to prune, no depthwise convolution and no residual connection"
        if self.residual_inside(module):
            return "it contains residual blocks"
        if not self.residual_inside(parent):
            return "no residual block beside it"
        return None


def _assign_stages(blocks: list[_Block], root: nn.Module) -> None:
    """A stage: a block of a parent module followed by its residual block siblings (module order)."""
    by_name = {b.name: b for b in blocks}
    for parent_name, parent in root.named_modules():
        stage: list[_Block] = []
        for child_name in parent._modules:
            block = by_name.get(f"{parent_name}.{child_name}" if parent_name else child_name)
            if block is None or not block.residual:
                _close_stage(stage)
                stage = []
            if block is not None:
                stage.append(block)
        _close_stage(stage)


def _close_stage(stage: list[_Block]) -> None:
    for position, block in enumerate(stage):
        block.stage_position, block.stage_length = position, len(stage)


def _spec(block: _Block, descriptor: TransformationParameters, orders: list[list[int]]) -> CandidateSpec | None:
    """The candidate ``descriptor`` makes of ``block``, or ``None`` when it does not apply."""
    depth = descriptor.depth_mult
    dropped = depth is not None and block.stage_position >= max(1, math.ceil(depth * block.stage_length))
    if descriptor.width_mult == 0.0 or dropped:
        return CandidateSpec(removed=True) if block.residual else None
    width = 1.0 if descriptor.width_mult is None else descriptor.width_mult
    if width < 1.0 and not block.analysis.groups:
        return None
    keep = tuple(
        tuple(sorted(order[:kept_count(width, group.size)]))
        for group, order in zip(block.analysis.groups, orders)
    )
    kernels: list[tuple[str, int]] = []
    if descriptor.kernel_size is not None:
        k = descriptor.kernel_size
        changeable = [
            name for name in block.analysis.depthwise
            if new_kernel_padding(block.module.get_submodule(name), k) is not None
        ]
        if not changeable:
            return None
        kernels = [(name, k) for name in changeable if block.module.get_submodule(name).kernel_size[0] != k]
    return CandidateSpec(keep=keep, kernels=tuple(kernels))


def _check_descriptors(descriptors: Iterable[TransformationParameters]) -> tuple[TransformationParameters, ...]:
    if isinstance(descriptors, TransformationParameters):
        descriptors = (descriptors,)
    try:
        result = tuple(descriptors)
    except TypeError:
        raise TypeError(
            "generate_pruned_search_variants_model: search_variant_descriptors must be a sequence of "
            f"TransformationParameters, got {type(descriptors).__name__}"
        ) from None
    if not result:
        raise ValueError("generate_pruned_search_variants_model: search_variant_descriptors is empty; give at least two")
    for i, item in enumerate(result):
        if not isinstance(item, TransformationParameters):
            raise TypeError(
                f"generate_pruned_search_variants_model: search_variant_descriptors[{i}] is a "
                f"{type(item).__name__}, not TransformationParameters"
            )
    return result


def _check_excluded(model: nn.Module, excluded: Iterable[nn.Module | type] | None) -> tuple[set[int], tuple[type, ...]]:
    if excluded is None:
        return set(), ()
    if isinstance(excluded, nn.Module) or isinstance(excluded, type):
        excluded = [excluded]
    ids: set[int] = set()
    types: list[type] = []
    inside = {id(m) for m in model.modules()}
    for item in excluded:
        if isinstance(item, type) and issubclass(item, nn.Module):
            types.append(item)
        elif isinstance(item, nn.Module):
            if id(item) not in inside:
                raise ValueError(
                    f"generate_pruned_search_variants_model: excluded module {type(item).__name__} is not "
                    "a submodule of the model; pass modules of this model (e.g. model.features[0]) or module types"
                )
            ids.add(id(item))
        else:
            raise TypeError(
                "generate_pruned_search_variants_model: excluded_modules holds modules or nn.Module "
                f"subclasses, got {item!r}"
            )
    return ids, tuple(types)


def generate_pruned_search_variants_model(
    model: nn.Module,
    search_variant_descriptors: Sequence[TransformationParameters] = _DEFAULT_DESCRIPTORS,
    excluded_modules: Iterable[nn.Module | type] | None = None,
) -> nn.Module:
    """Returns a copy of ``model`` whose blocks are :class:`~enot.models.SearchVariantsContainer`\\ s of
    transformed copies of themselves, one per descriptor, initialised from the trained weights.

    Blocks are found with ``torch.fx`` (each block is traced on its own, so the model as a whole
    need not be traceable): a *residual block* is a module whose forward adds its input to a branch
    (MobileNetV2's inverted residual, EfficientNet's MBConv and Fused-MBConv, ResNet's BasicBlock and
    Bottleneck, or your own); a module beside residual blocks with inner channels to prune (the block
    that opens a stage) is a block too.  Each container holds the candidates in descriptor order; a
    descriptor that cannot apply to a block (``width_mult=0`` or a dropped ``depth_mult`` position on
    a block without residual connection, ``width_mult < 1`` without inner channels, ``kernel_size``
    without depthwise convolution) or gives the same block as an earlier one is skipped for that
    block.  ``TransformationParameters(width_mult=1.0)`` is the original block (its own class and
    weights).  See :class:`TransformationParameters` for what each parameter does.

    Modules that are not blocks (stem, head, blocks with a single candidate) are left as they are and
    listed in a ``UserWarning``; ``excluded_modules`` are never touched nor listed.  The model itself
    is not modified.

    Args:
        model: A (trained) model; only its blocks need to be traceable by ``torch.fx``.
        search_variant_descriptors: The candidates to make of each block.
        excluded_modules: Modules of ``model`` or module types (every instance) to leave unchanged.

    Returns:
        A copy of ``model`` holding one container per block, ready for
        ``enot.models.SearchSpaceModel``.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``, a descriptor is not a
            ``TransformationParameters`` or an excluded item is neither a module nor a module type.
        ValueError: If no descriptor is given, an excluded module is not part of ``model``, or no
            block of ``model`` gets two or more candidates.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"generate_pruned_search_variants_model expects an nn.Module, got {type(model).__name__}")
    descriptors = _check_descriptors(search_variant_descriptors)
    excluded_ids, excluded_types = _check_excluded(model, excluded_modules)

    finder = _Finder(excluded_ids, excluded_types)
    finder.walk(model, "", None)
    _assign_stages(finder.blocks, model)

    plans: list[tuple[_Block, list[CandidateSpec]]] = []
    for block in finder.blocks:
        orders = [channel_order(block.module, group) for group in block.analysis.groups]
        specs: list[CandidateSpec] = []
        for descriptor in descriptors:
            spec = _spec(block, descriptor, orders)
            if spec is not None and spec not in specs:
                specs.append(spec)
        if len(specs) < 2:
            finder.reasons[block.name] = "the descriptors give it no candidate other than itself"
            continue
        plans.append((block, specs))
    if not plans:
        listed = "; ".join(f"{name or 'model'}: {why}" for name, why in list(finder.reasons.items())[:8])
        raise ValueError(
            "generate_pruned_search_variants_model found no block to make candidates of (residual "
            f"blocks, or blocks with inner channels beside them); {listed}"
        )

    generated = copy.deepcopy(model)
    for block, specs in plans:
        original = generated.get_submodule(block.name)
        full = tuple(tuple(range(g.size)) for g in block.analysis.groups)
        candidates = [
            original if spec == CandidateSpec(keep=full) else build_candidate(original, block.analysis, spec)
            for spec in specs
        ]
        parent_name, _, child = block.name.rpartition(".")
        setattr(generated.get_submodule(parent_name) if parent_name else generated, child, SearchVariantsContainer(candidates))

    _warn_unchanged(model, finder, {b.name for b, _ in plans})
    return generated


def _warn_unchanged(model: nn.Module, finder: _Finder, transformed: set[str]) -> None:
    """Warns about the largest modules with weights that hold no transformed block."""
    unchanged: list[str] = []

    def visit(module: nn.Module, name: str) -> None:
        for child_name, child in module.named_children():
            full = f"{name}.{child_name}" if name else child_name
            if finder.excluded(child) or full in transformed:
                continue
            if any(t.startswith(full + ".") for t in transformed):
                visit(child, full)
            elif next(child.parameters(), None) is not None and not finder.excluded_inside(child):
                why = finder.reasons.get(full, "not a block")
                unchanged.append(f"{full} ({type(child).__name__}: {why})")
            elif finder.excluded_inside(child):
                visit(child, full)

    visit(model, "")
    if unchanged:
        warnings.warn(
            "generate_pruned_search_variants_model left these modules unchanged (pass them in "
            "excluded_modules to silence this): " + "; ".join(unchanged),
            UserWarning,
            stacklevel=3,
        )
