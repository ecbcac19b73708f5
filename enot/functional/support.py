"""What the other layers of ``enot`` use from the functional core besides its user API.

``import enot.functional as ef`` is the user API; this module holds the helpers the models,
latency, utilities and facade layers share with the core (argument validators, the layout builder,
the latency table's fit check, the forward replay, frozen batch norm, the finite-gradient check).
It is public so that no package reads another package's private module (``docs/design.md``,
"Layers"); user code should not need it.
"""

from enot.functional._bn import frozen_batch_norm
from enot.functional._evolution import check_evolution_config
from enot.functional._grads import all_finite
from enot.functional._guards import accepted_keywords, check_iterable, check_options
from enot.functional._latency import DEFAULT_BINS, MAX_ENUMERATE
from enot.functional._layout import build_layout, check_latency_fits
from enot.functional._replay import replaced_forwards
from enot.functional._validate import check_callable, check_int, check_number

__all__ = [
    "DEFAULT_BINS",
    "MAX_ENUMERATE",
    "accepted_keywords",
    "all_finite",
    "build_layout",
    "check_callable",
    "check_evolution_config",
    "check_int",
    "check_iterable",
    "check_latency_fits",
    "check_number",
    "check_options",
    "frozen_batch_norm",
    "replaced_forwards",
]
