"""Channel / filter machinery shared by the structured methods (FT, PFP, random-filter) and ``compress``.

Why whole *dependency groups* (the design choice of prunebench's structured methods): on a
residual stream (ResNet) the stem, every block's last conv and the projection shortcuts all write
the same channels, and a ``torch.cat`` (DenseNet) hands one layer's filters to many later layers at
shifted offsets. A channel can be removed physically only together with every member of its
group. The structured methods therefore score and prune *groups of coupled channels* (the
Torch-Pruning notion of a group, obtained from its ``DependencyGraph``), and a pruned channel
zeroes, in the masks:

  * the output rows of every producer Conv2d/Linear of the group (the "filters"), and
  * the input columns of every consumer Conv2d/Linear of the group (for a Linear behind a
    ``Flatten`` the H*W columns of each channel).

BatchNorm is *not* masked. Because every consumer of a pruned channel ignores it (zero input
columns), whatever the channel carries (e.g. the BN shift of a zeroed filter) never reaches the
output, so removing the channel physically (``prunebench.pruning.compress``) gives the same
outputs as the masked model up to float rounding, also after fine-tuning. On plain chains
(LeNet, VGG) a group is one layer's filters plus the next layer's input channels, i.e. exactly
the per-layer reference behaviour. Consequence: the masked model's effective FLOPs equal the
compressed model's real FLOPs (``compress.compression_gap`` measures the difference).

A group is *prunable* only if all its Conv2d/Linear members are selected prunable layers (a
weight in ``state.masks``), none is a grouped conv, every other member with parameters is a
per-channel op (BatchNorm, PReLU), and it has at least one producer and one consumer. The
last layer's outputs (the classes) have no consumer, and the image channels no producer, so
neither is ever pruned.

Channel bookkeeping: all channels of all prunable groups get one global id (``0..n-1``); id
``n`` is a constant "always kept" slot used by rows/columns outside any prunable group. A keep
vector of length ``n + 1`` then determines every weight mask by an outer product.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from prunebench.errors import UserError
from prunebench.pruning.selection import module_name, weight_name

_PER_CHANNEL_OK = (nn.modules.batchnorm._BatchNorm, nn.PReLU)


@dataclass
class ChannelGroup:
    """One set of coupled channels: removing channel k removes row/column k of every member."""

    root: str  # module name of the Conv2d/Linear whose output channels index the group
    size: int
    producers: list[str] = field(default_factory=list)  # prunable layers writing these channels
    consumers: list[str] = field(default_factory=list)  # prunable layers reading them
    offset: int = -1  # first global channel id (-1: group is not prunable)
    reason: str = ""  # why it is not prunable ("" if it is)

    @property
    def prunable(self) -> bool:
        return self.offset >= 0

    @property
    def ids(self) -> range:
        return range(self.offset, self.offset + self.size)


@dataclass
class ChannelStructure:
    """Where every row / column of every prunable weight lives in the global channel space."""

    layers: dict[str, nn.Module]  # module name -> Conv2d/Linear, the prunable layers (mask order)
    groups: list[ChannelGroup]
    out_map: dict[str, Tensor]  # module name -> long[out]: global id of each output row (n = none)
    in_map: dict[str, Tensor]  # module name -> long[in]: global id of each input column (n = none)
    n: int  # number of prunable channels
    group_of: Tensor  # long[n]: index into ``groups`` of each global channel

    @property
    def prunable_groups(self) -> list[ChannelGroup]:
        return [g for g in self.groups if g.prunable]

    # ------------------------------------------------------------------ mask algebra
    def _full(self, keep: Tensor) -> Tensor:
        """keep[n] (bool or 0/1) plus the always-kept slot, as float64 on the CPU."""
        return torch.cat([keep.to(device="cpu", dtype=torch.float64), torch.ones(1, dtype=torch.float64)])

    def counts(self, masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per layer: float64 (out, in) matrix of kept weights in each (row, column) kernel slice."""
        out: dict[str, Tensor] = {}
        for name in self.layers:
            m = masks[weight_name(name)]
            if bool(m.all()):  # dense layer: skip the (slow) per-slice count
                out[name] = torch.full(tuple(m.shape[:2]), float(m[0, 0].numel()), dtype=torch.float64)
            else:
                out[name] = m.reshape(m.shape[0], m.shape[1], -1).sum(-1).to(device="cpu", dtype=torch.float64)
        return out

    def remaining(self, keep: Tensor, counts: Mapping[str, Tensor]) -> float:
        """Prunable weights left if exactly the channels with ``keep[c] = 1`` survive."""
        k = self._full(keep)
        return float(sum(k[self.out_map[n]] @ c @ k[self.in_map[n]] for n, c in counts.items()))

    def potential(self, keep: Tensor, counts: Mapping[str, Tensor]) -> Tensor:
        """For each channel c: weights that depend on c given the other channels (its removal
        saves this much if kept; adding it back costs this much if not). Ignores the rare weight
        whose row and column are both c."""
        k = self._full(keep)
        pot = torch.zeros(self.n + 1, dtype=torch.float64)
        for name, c in counts.items():
            o, i = self.out_map[name], self.in_map[name]
            pot.index_add_(0, o, c @ k[i])
            pot.index_add_(0, i, k[o] @ c)
        return pot[: self.n]

    def alive(self, masks: Mapping[str, Tensor], counts: Mapping[str, Tensor] | None = None) -> Tensor:
        """bool[n]: channel still has a kept weight in some member (False = already fully pruned)."""
        counts = self.counts(masks) if counts is None else counts
        live = torch.zeros(self.n + 1, dtype=torch.bool)
        for name, c in counts.items():
            live[self.out_map[name][c.sum(1) > 0]] = True
            live[self.in_map[name][c.sum(0) > 0]] = True
        return live[: self.n]

    def expand(self, keep: Tensor, masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Weight masks (all keys of ``masks``) that drop the rows/columns of unkept channels,
        ANDed with ``masks`` so nothing is revived (cascade)."""
        k = torch.cat([keep.to(device="cpu", dtype=torch.bool), torch.ones(1, dtype=torch.bool)])
        new: dict[str, Tensor] = {}
        for key, m in masks.items():
            name = module_name(key)
            if name not in self.layers:
                new[key] = m.clone()
                continue
            rows = k[self.out_map[name]].to(m.device)
            cols = k[self.in_map[name]].to(m.device)
            shape = (1,) * (m.dim() - 2)
            new[key] = m & rows.view(-1, 1, *shape) & cols.view(1, -1, *shape)
        return new

    def per_group(self, flags: Tensor) -> Tensor:
        """Count of set ``flags`` (bool[n]) in each group (indexed like ``groups``)."""
        return torch.zeros(len(self.groups), dtype=torch.long).index_add_(0, self.group_of, flags.long())

    def rank_in_group(self, score: Tensor, alive: Tensor) -> Tensor:
        """long[n]: 0 for the best-scored alive channel of each group, 1 for the next, ...;
        dead channels rank last. Ties keep the lower channel index first (deterministic)."""
        rank = torch.empty(self.n, dtype=torch.long)
        s = torch.where(alive, score.to(torch.float64), torch.full_like(score, -torch.inf, dtype=torch.float64))
        for g in self.prunable_groups:
            ids = torch.arange(g.offset, g.offset + g.size)
            order = torch.sort(s[ids], descending=True, stable=True).indices
            rank[ids[order]] = torch.arange(g.size)
        return rank

    def gather_rows(self, values: Mapping[str, Tensor]) -> Tensor:
        """Sum per-row values (name -> tensor[out]) of producers into their global channels."""
        acc = torch.zeros(self.n + 1, dtype=torch.float64)
        for name, v in values.items():
            acc.index_add_(0, self.out_map[name], v.detach().to(device="cpu", dtype=torch.float64))
        return acc[: self.n]


# ---------------------------------------------------------------------- analysis
_CACHE: OrderedDict[tuple, ChannelStructure] = OrderedDict()


def _signature(model: nn.Module, layers: Sequence[str], example: Tensor) -> tuple:
    mods = tuple((n, type(m), tuple((k, tuple(p.shape)) for k, p in m.named_parameters(recurse=False)))
                 for n, m in model.named_modules())
    return (type(model), mods, tuple(layers), tuple(example.shape), example.dtype)


def analyse(model: nn.Module, layer_names: Sequence[str], example_input: Tensor) -> ChannelStructure:
    """Trace ``model`` with Torch-Pruning's DependencyGraph and map every row/column of the
    prunable layers ``layer_names`` (module names) to a global channel id.

    The trace runs on a deep copy in eval mode (BN statistics of ``model`` are untouched).
    Results are cached per architecture (module names, types and parameter shapes).
    """
    key = _signature(model, layer_names, example_input)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _rebind(_CACHE[key], model)
    struct = _analyse(model, list(layer_names), example_input)
    _CACHE[key] = struct
    while len(_CACHE) > 16:
        _CACHE.popitem(last=False)
    return _rebind(struct, model)


def _rebind(struct: ChannelStructure, model: nn.Module) -> ChannelStructure:
    """The cached maps with the layers of ``model`` (the cache holds names only, no modules)."""
    layers = {n: model.get_submodule(n) for n in struct.layers}
    return ChannelStructure(layers, struct.groups, struct.out_map, struct.in_map, struct.n, struct.group_of)


def build_dependency_graph(model: nn.Module, example_input: Tensor):
    """A Torch-Pruning DependencyGraph of ``model`` (traced with autograd); UserError if it fails."""
    import torch_pruning as tp

    try:
        with torch.enable_grad():
            return tp.DependencyGraph().build_dependency(model, example_inputs=example_input, verbose=False)
    except Exception as e:  # tracing arbitrary user code: any failure means "cannot analyse"
        raise UserError(
            f"cannot trace the channel dependencies of {type(model).__name__} ({type(e).__name__}: {e}); "
            "structured pruning needs a model Torch-Pruning can trace: use an unstructured method or a zoo model"
        ) from None


def _analyse(model: nn.Module, names: list[str], example: Tensor) -> ChannelStructure:
    work = copy.deepcopy(model).eval()
    dev = next((p.device for p in work.parameters()), torch.device("cpu"))
    dg = build_dependency_graph(work, example.to(dev))
    mod2name = {m: n for n, m in work.named_modules()}
    wanted = set(names)
    groups: list[ChannelGroup] = []
    raw: list[list[tuple[str, bool, list[int], list[int]]]] = []
    for grp in dg.get_all_groups(root_module_types=(nn.Conv2d, nn.Linear)):
        root_mod = grp[0].dep.target.module
        root = mod2name.get(root_mod, "?")
        size = len(grp[0].idxs)
        g = ChannelGroup(root=root, size=size)
        members: list[tuple[str, bool, list[int], list[int]]] = []
        for item in grp.items:
            mod, fn = item.dep.target.module, item.dep.handler
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                name = mod2name.get(mod, "?")
                produces = dg.is_out_channel_pruning_fn(fn)
                if isinstance(mod, nn.Conv2d) and mod.groups > 1:
                    g.reason = g.reason or f"grouped conv {name!r}"
                elif name not in wanted:
                    g.reason = g.reason or f"layer {name!r} is not selected for pruning"
                (g.producers if produces else g.consumers).append(name)
                members.append((name, produces, list(item.idxs), list(item.root_idxs)))
            elif isinstance(mod, nn.Parameter):
                g.reason = g.reason or "a bare nn.Parameter member"
            elif isinstance(mod, nn.Module) and not isinstance(mod, _PER_CHANNEL_OK):
                if type(mod).__module__.startswith("torch_pruning"):
                    continue  # traced functional op (add, cat, reshape, ...)
                if any(True for _ in mod.parameters(recurse=False)):
                    g.reason = g.reason or f"{type(mod).__name__} {mod2name.get(mod, '?')!r} mixes channels"
        if not g.reason and not g.producers:
            g.reason = "no producer layer"
        if not g.reason and not g.consumers:
            g.reason = "no consumer layer (model output)"
        groups.append(g)
        raw.append(members)

    n = 0
    for g in groups:
        if not g.reason:
            g.offset, n = n, n + g.size
    shapes = {name: tuple(work.get_submodule(name).weight.shape) for name in names}  # type: ignore[arg-type]  # torch types Module attributes as Tensor | Module; a prunable layer's weight is a Tensor
    out_map = {name: torch.full((shape[0],), n, dtype=torch.long) for name, shape in shapes.items()}
    in_map = {name: torch.full((shape[1],), n, dtype=torch.long) for name, shape in shapes.items()}
    group_of = torch.empty(n, dtype=torch.long)
    for gi, (g, members) in enumerate(zip(groups, raw, strict=True)):
        if not g.prunable:
            continue
        group_of[g.offset : g.offset + g.size] = gi
        for name, produces, idxs, root_idxs in members:
            target = out_map[name] if produces else in_map[name]
            target[torch.tensor(idxs, dtype=torch.long)] = g.offset + torch.tensor(root_idxs, dtype=torch.long)
    return ChannelStructure(dict.fromkeys(names), groups, out_map, in_map, n, group_of)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- inputs
def example_input_for(model: nn.Module, data=None, input_shape: Sequence[int] | None = None) -> Tensor:
    """A one-image batch to trace ``model`` with: ``input_shape`` (C, H, W) if given, else the
    shape of ``data`` (a Dataset), else guessed from the first layer (square sides 32, 28, 64, 96,
    224 are tried; a Linear first layer takes a flat vector)."""
    p = next(model.parameters(), None)
    dev = p.device if p is not None else torch.device("cpu")
    if input_shape is not None:
        return torch.randn(1, *(int(s) for s in input_shape), device=dev)
    if data is not None:
        h, w = data.info.image_size
        return torch.randn(1, data.info.in_channels, h, w, device=dev)
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    if first is None:
        raise UserError(f"{type(model).__name__} has no Conv2d/Linear layer to prune structurally")
    candidates = ([(first.in_features,)] if isinstance(first, nn.Linear)
                  else [(first.in_channels, s, s) for s in (32, 28, 64, 96, 224)])
    probe = copy.deepcopy(model).eval()
    for shape in candidates:
        x = torch.randn(1, *shape, device=dev)
        try:
            with torch.no_grad():
                probe(x)
            return x
        except Exception:  # wrong guess: try the next size
            continue
    raise UserError(f"cannot guess the input shape of {type(model).__name__}; "
                    "pass the option input_shape=[C, H, W] (or a dataset)")
