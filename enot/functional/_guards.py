"""Checks that refuse bad input before anything changes (issue 12, `docs/reliability.md`).

Each function raises ``TypeError``/``ValueError`` naming the bad value and what is allowed, and has
no side effect, so callers run it before they mutate anything.  Depends on nothing of ``enot``, so
every layer may import it; argument checks of one value (ints, numbers, callables) are in
``_validate.py``; checks that name the optimizer classes or read ``param_groups`` are the facade's
(``enot/facade/_checks.py``).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["accepted_keywords", "check_iterable", "check_options"]


# --------------------------------------------------------------------------------------- options
def accepted_keywords(owner: type | Any) -> tuple[str, ...]:
    """Names of the keyword parameters of ``owner``'s constructor (a class) or of ``owner`` (a function)."""
    function = owner.__init__ if isinstance(owner, type) else owner
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in parameters if p.kind in kinds and p.name != "self")


def check_options(
    owner: type | str, options: Mapping[str, Any], allowed: Iterable[str], related: Mapping[str, Iterable[str]] | None = None
) -> None:
    """Raises ``ValueError`` for every key of ``options`` not in ``allowed``.

    The message lists every accepted name (the constructor's keyword parameters when ``owner`` is a
    class, and the ``**options``) and suggests the closest one for each unknown name, so that a typo
    such as ``bn_tune_batchs`` points at ``bn_tune_batches``.  ``related`` maps the names of sibling
    classes to the names they accept: an option one of them takes (``max_latency_value`` given to the
    plain search optimizer), or a typo of one, is named with the class that takes it.
    """
    allowed = sorted(allowed)
    unknown = sorted(set(options) - set(allowed))
    if not unknown:
        return
    name = owner if isinstance(owner, str) else owner.__name__
    keywords = [] if isinstance(owner, str) else [k for k in accepted_keywords(owner) if k not in allowed]
    every = sorted({*keywords, *allowed})
    related = {k: set(v) for k, v in (related or {}).items() if k != name}
    suggestions, elsewhere = [], []
    for bad in unknown:
        close = difflib.get_close_matches(str(bad), every, n=1, cutoff=0.6)
        if close:
            suggestions.append(f"{close[0]!r}" if len(unknown) == 1 else f"{close[0]!r} for {bad!r}")
            continue
        theirs = sorted({n for names in related.values() for n in names})
        match = bad if bad in theirs else next(iter(difflib.get_close_matches(str(bad), theirs, n=1, cutoff=0.8)), None)
        if match is not None:
            owners = sorted(k for k, names in related.items() if match in names)
            said = f"{bad!r} is" if match == bad else f"{bad!r} looks like {match!r}, which is"
            elsewhere.append(f"{said} an option of {' and '.join(owners)}, not of {name}")
    hint = f" (did you mean {', '.join(suggestions)}?)" if suggestions else ""
    hint += "".join(f"; {note}" for note in elsewhere)
    accepted = f"keyword parameters {keywords}, options {allowed or 'none'}" if keywords else f"options {allowed or 'none'}"
    raise ValueError(f"{name} got unknown options {unknown}{hint}; accepted: {accepted}")


# ------------------------------------------------------------------------------------ iterables
def check_iterable(owner: str, name: str, value: Any) -> None:
    """Raises ``TypeError`` if ``value`` cannot be iterated (checked on the type: no iterator is made,
    so a ``DataLoader`` starts no workers)."""
    kind = type(value)
    if not (hasattr(kind, "__iter__") or hasattr(kind, "__getitem__")) or isinstance(value, (str, bytes)):
        raise TypeError(
            f"{owner}: {name} must be an iterable of batches (a DataLoader, a list...), got {kind.__name__}"
        )
