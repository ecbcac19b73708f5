"""Search-space autogeneration: a search space made from the blocks of a (trained) model.

``generate_pruned_search_variants_model(model, search_variant_descriptors, excluded_modules)``
replaces every block of a copy of ``model`` (found with ``torch.fx``: residual blocks such as
MobileNetV2's inverted residual, EfficientNet's MBConv / Fused-MBConv, ResNet's BasicBlock /
Bottleneck, and the blocks that open their stages) by a ``SearchVariantsContainer`` of transformed
copies, one per ``TransformationParameters``: inner channels pruned by importance, depthwise kernels
cropped or zero-padded, blocks removed.  Weights are inherited from the model.
"""

from enot.autogeneration._generate import generate_pruned_search_variants_model
from enot.autogeneration._parameters import TransformationParameters

__all__ = sorted(["TransformationParameters", "generate_pruned_search_variants_model"])
