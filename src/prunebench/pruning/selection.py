"""Which layers may be pruned: the selection policy shared by every pruning method.

Prunable = the ``weight`` of every ``nn.Conv2d`` and ``nn.Linear`` (subclasses included) in
registration order (``model.named_modules()``), minus what the :class:`Selection` excludes.
Biases, BatchNorm and embeddings are never pruned; ``prune_ratio`` is always measured over the
selected weights only.

Grouped / depthwise convolutions (``groups > 1``): they are *selected* by default, which is right
for unstructured pruning (every weight is an ordinary scalar). Structured pruning cannot remove
their filters independently of their inputs, so structured code builds its selection with
``include_grouped=False`` (see :meth:`Selection.for_structured`).

"First" and "last" (``keep_first_dense`` / ``keep_last_dense``) refer to registration order, which
is the execution order for every zoo model (stem first, classifier last).
"""
from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from torch import nn

from prunebench.errors import UserError

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)


def _as_tuple(x: Iterable[Any] | str | type | None) -> tuple[Any, ...]:
    if x is None:
        return ()
    if isinstance(x, (str, type)):
        return (x,)
    return tuple(x)


def _name_matches(name: str, patterns: tuple[str, ...]) -> bool:
    """A pattern matches a module name exactly, as a prefix ("layer1" -> "layer1.0.conv1") or as a glob."""
    for pat in patterns:
        if name == pat or name.startswith(pat + ".") or fnmatch.fnmatchcase(name, pat):
            return True
    return False


def _type_matches(module: nn.Module, types: tuple[Any, ...]) -> bool:
    """Types may be classes (isinstance) or class names (matched anywhere in the MRO, JSON-friendly)."""
    mro_names = {c.__name__ for c in type(module).__mro__}
    for t in types:
        if isinstance(t, type) and isinstance(module, t):
            return True
        if isinstance(t, str) and t in mro_names:
            return True
    return False


def prunable_layers(
    model: nn.Module,
    exclude_names: Iterable[str] | str = (),
    exclude_types: Iterable[type | str] | type | str = (),
    keep_first_dense: bool = False,
    keep_last_dense: bool = False,
    include_grouped: bool = True,
) -> dict[str, nn.Module]:
    """Ordered ``module name -> Conv2d/Linear`` of the layers whose ``weight`` may be pruned.

    ``exclude_names`` entries match a module name exactly, as a dotted prefix, or as an fnmatch
    glob (``"*.shortcut.*"``). ``exclude_types`` entries are classes or class names.
    ``keep_first_dense`` / ``keep_last_dense`` drop the first / last candidate layer (after the
    other exclusions). ``include_grouped=False`` drops convs with ``groups > 1``.
    """
    names = tuple(str(n) for n in _as_tuple(exclude_names))
    types = _as_tuple(exclude_types)
    for t in types:
        if not isinstance(t, (str, type)):
            raise UserError(f"exclude_types entries must be classes or class names, got {t!r}; use e.g. 'Linear'")
    layers: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_TYPES):  # name "" = the model is itself one layer
            continue
        if not isinstance(getattr(module, "weight", None), nn.Parameter):
            if hasattr(module, "weight_orig"):
                raise UserError(
                    f"layer {name or '<root>'!r} carries a torch.nn.utils.prune reparametrization; "
                    "import it first with PruningState.from_torch_prune(model)"
                )
            continue  # lazy / weightless layers cannot be pruned
        if _name_matches(name, names) or _type_matches(module, types):
            continue
        if not include_grouped and isinstance(module, nn.Conv2d) and module.groups > 1:
            continue
        layers[name] = module
    keys = list(layers)
    if keep_first_dense and keys:
        layers.pop(keys[0])
    if keep_last_dense and len(keys) > (1 if keep_first_dense else 0):
        layers.pop(keys[-1])
    return layers


def weight_name(module_name: str) -> str:
    """Parameter name of a layer's weight: ``"layer1.0.conv1" -> "layer1.0.conv1.weight"``."""
    return f"{module_name}.weight" if module_name else "weight"


def module_name(param_name: str) -> str:
    """Inverse of :func:`weight_name`."""
    return param_name.rsplit(".", 1)[0] if "." in param_name else ""


@dataclass(frozen=True)
class Selection:
    """The layer-selection policy (hashable, JSON-serialisable via :meth:`to_dict`)."""

    exclude_names: tuple[str, ...] = ()
    exclude_types: tuple[type | str, ...] = ()
    keep_first_dense: bool = False
    keep_last_dense: bool = False
    include_grouped: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude_names", tuple(str(n) for n in _as_tuple(self.exclude_names)))
        object.__setattr__(self, "exclude_types", _as_tuple(self.exclude_types))

    def layers(self, model: nn.Module) -> dict[str, nn.Module]:
        """The selected layers of ``model`` (module name -> layer), in registration order."""
        return prunable_layers(
            model, self.exclude_names, self.exclude_types, self.keep_first_dense,
            self.keep_last_dense, self.include_grouped,
        )

    def weights(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The selected weights (parameter name -> Parameter), in registration order."""
        return {weight_name(n): m.weight for n, m in self.layers(model).items()}  # type: ignore[misc]  # torch types Module attributes as Tensor | Module; a prunable layer's weight is a Parameter

    def for_structured(self) -> Selection:
        """The same policy minus grouped/depthwise convs (their filters cannot be removed alone)."""
        return replace(self, include_grouped=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exclude_names"] = list(self.exclude_names)
        d["exclude_types"] = [t if isinstance(t, str) else t.__name__ for t in self.exclude_types]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Selection:
        known = {"exclude_names", "exclude_types", "keep_first_dense", "keep_last_dense", "include_grouped"}
        unknown = set(d) - known
        if unknown:
            raise UserError(f"unknown selection option(s) {sorted(unknown)}; choose from {sorted(known)}")
        return cls(**d)
