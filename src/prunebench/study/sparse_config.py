"""The ``sparse:`` section of a ``mode: sparse-train`` study (Liu et al., ICLR 2022; docs/STUDY.md).

    mode: sparse-train
    ratios: [0.9, 0.95]                 # sparsities: fraction of the prunable weights masked from the start
    sparse:
      runs:                             # each run is one pipeline: a criterion x a density scheme (x an update rule)
        - {criterion: random, scheme: uniform}
        - {criterion: random, scheme: erk}
        - {criterion: random, scheme: erk, update: rigl}
      widths: [1, 2]                    # model sizes; every size gets its own dense reference (same recipe, seeds)
      depths: [20, 56, 110]             # zoo models of model.name's family at these depths (resnet20/56/110)

Names (criterion, scheme, update) and their options are checked against the registries of
:mod:`prunebench.pruning.sparse` by the loader; this module imports no torch.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparseRunSpec(_Strict):
    """One sparse-training pipeline: mask drawn at initialisation by ``criterion`` at the layer densities of
    ``scheme``, kept fixed (``update: null``) or rewired during training (``set``, ``rigl``)."""

    criterion: str = Field("random", description="which weights a layer keeps (prunebench list criteria)")
    scheme: str = Field("erk", description="layer-wise densities (prunebench list schemes)")
    update: str | None = Field(None, description="null: static mask; set / rigl: dynamic sparse training")
    criterion_options: dict[str, Any] = Field(default_factory=dict)
    scheme_options: dict[str, Any] = Field(default_factory=dict)
    update_options: dict[str, Any] = Field(default_factory=dict, description="update_every, fraction, end, decay")
    exact: bool = Field(True, description="exact per-layer counts; false: Bernoulli draws (random criterion only)")
    label: str | None = Field(None, description="row label; default <criterion>-<scheme> or <update>-<scheme>")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        """``"random/erk"`` = criterion random, scheme erk; ``"rigl/erk"`` = update rigl on random erk masks."""
        if isinstance(v, str):
            from prunebench.errors import UserError

            parts = v.split("/")
            if len(parts) != 2 or not all(parts):
                raise UserError(f"sparse.runs: {v!r} is not <criterion>/<scheme> or <update>/<scheme>; "
                                "write e.g. random/erk, rigl/erk or {criterion: snip, scheme: uniform}")
            head, scheme = parts
            return {"update": head, "scheme": scheme} if head in ("set", "rigl") else {"criterion": head, "scheme": scheme}
        return v

    @property
    def tag(self) -> str:
        if self.label:
            return self.label
        if self.update is None:
            return f"{self.criterion}-{self.scheme}"
        crit = "" if self.criterion == "random" else f"{self.criterion}-"
        return f"{self.update}-{crit}{self.scheme}"


class SparseSpec(_Strict):
    """The runs of a sparse-training study and its model-size axes."""

    runs: tuple[SparseRunSpec, ...] = Field(min_length=1)
    widths: tuple[float, ...] | None = Field(None, description="width multipliers (default: model.width only)")
    depths: tuple[int, ...] | None = Field(None, description="depths of model.name's family (default: model.name only)")
    grad_samples: int = Field(256, ge=1, description="validation images for the gradient norm at initialisation")

    @field_validator("widths")
    @classmethod
    def _widths(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is not None:
            if not v or any(not w > 0 for w in v):
                raise ValueError(f"widths must be a non-empty list of positive multipliers, got {list(v)}")
            if len(set(v)) != len(v):
                raise ValueError(f"widths {list(v)} repeat a value")
        return v

    @field_validator("depths")
    @classmethod
    def _depths(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None and (not v or len(set(v)) != len(v) or any(d <= 0 for d in v)):
            raise ValueError(f"depths must be distinct positive layer counts, e.g. [20, 56, 110], got {list(v)}")
        return v

    @model_validator(mode="after")
    def _unique(self) -> SparseSpec:
        tags = [r.tag for r in self.runs]
        dup = sorted({t for t in tags if tags.count(t) > 1})
        if dup:
            raise ValueError(f"runs: {dup[0]!r} is listed twice; give the second one a distinct 'label'")
        if "parent" in tags:
            raise ValueError("runs: 'parent' is reserved for the dense reference row; choose another label")
        return self
