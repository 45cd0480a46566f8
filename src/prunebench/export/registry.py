"""The FORMATS registry: one typed :class:`FormatSpec` per file format ``prunebench export`` writes.

A format is one module of :mod:`prunebench.export.formats` (or a plug-in) with one decorator::

    @FORMATS.register("onnx", suffix=".onnx", compressed=True, folded=True, needs=("onnxruntime",))
    def write(model, source, path): ...  # writes ``path``, returns a function running the written file

The writer gets the model to ship (compressed and BatchNorm-folded as the spec asks), the
:class:`~prunebench.export.base.Source` it came from, and the path to write; it returns a callable
``x -> logits`` that runs *the written file* (e.g. in onnxruntime), with which the export is
verified against the PyTorch model before the file is moved into place.
"""
from __future__ import annotations

from dataclasses import dataclass

from prunebench.registry import Registry, Spec


@dataclass(frozen=True, kw_only=True)
class FormatSpec(Spec):
    """Typed metadata of an export format: the file ``suffix``; whether it ships the ``compressed``
    model (fully pruned channels removed) and ``folded`` BatchNorm (an inference-only graph); the
    optional packages it ``needs`` (``pip install 'prunebench[export]'``)."""

    suffix: str
    compressed: bool = True
    folded: bool = True
    needs: tuple[str, ...] = ()


FORMATS: Registry[FormatSpec] = Registry("export format", FormatSpec, packages=("prunebench.export.formats",))
