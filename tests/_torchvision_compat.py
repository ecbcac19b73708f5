"""Make PyPI's torchvision importable beside the CPU build of torch, for the tests only.

PyPI's torchvision wheel is built against CUDA torch; on import it registers fake kernels for
`torchvision::nms` and `torchvision::qnms`, whose schemas only its own C++ extension defines, so
`import torchvision` fails beside the CPU torch.  The models the tests use need none of its C++
ops: defining the two schemas first is enough.  Never done in library code.
"""

from __future__ import annotations

import torch

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIBRARIES: list[torch.library.Library] = []  # a Library undefines its ops when collected


def define_torchvision_op_schemas() -> None:
    """Define `torchvision::nms` and `torchvision::qnms` unless something already did."""
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        name = schema.split("(", 1)[0]
        try:
            torch.ops.torchvision.__getattr__(name)
        except (AttributeError, RuntimeError):
            lib.define(schema)
    _LIBRARIES.append(lib)
