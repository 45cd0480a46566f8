"""``prunebench export``: write a checkpoint as the model a deployment runs (compressed, BatchNorm folded)
in ONNX, TorchScript, safetensors or CSR, verified against PyTorch on test images; ``--latency`` times the
ONNX file next to the same network unpruned-shaped in onnxruntime."""
from __future__ import annotations

import argparse

EXAMPLE = ("examples:\n  prunebench export pruned/ft50.safetensors --format onnx --out ft50.onnx --latency\n"
           "  prunebench export pruned/wt90.safetensors --format csr --out wt90-csr.safetensors\n"
           "  prunebench export pruned/ft50.safetensors --format torchscript --out ft50.pt")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a (pruned) checkpoint to ONNX / TorchScript / safetensors / CSR",
                       description=__doc__, epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by prunebench")
    p.add_argument("--format", required=True,
                   help="onnx / torchscript: compressed + BatchNorm folded; safetensors: compressed prunebench "
                        "checkpoint; csr: sparse layers as CSR (prunebench list formats)")
    p.add_argument("--out", required=True, help="file to write (nothing is written unless the check passes)")
    p.add_argument("--images", type=int, default=64, help="test images the export is verified on (default 64)")
    p.add_argument("--latency", action="store_true",
                   help="onnx: median onnxruntime latency of the unpruned-shaped network vs the export")
    p.add_argument("--batch", default="1,16", help="batch sizes for --latency (comma-separated, default 1,16)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for --latency (default 1)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from prunebench.errors import UserError
    from prunebench.export import FORMATS, export as write, load_source
    from prunebench.outpaths import check_out_file

    spec = FORMATS.spec(args.format)
    if args.images < 1:
        raise UserError(f"--images must be >= 1, got {args.images}")
    batches = _batches(args.batch) if args.latency else []
    if args.latency and args.format != "onnx":
        raise UserError(f"--latency times ONNX files in onnxruntime; use it with --format onnx, not {args.format}")
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    out = check_out_file(args.out, "--out")
    if out.suffix != spec.suffix:
        raise UserError(f"--out {out}: a {args.format} file should end in {spec.suffix}; name it e.g. "
                        f"{out.with_suffix(spec.suffix).name}")
    source = load_source(args.checkpoint, images=args.images)
    rep = write(source, args.format, out)
    how = ("channels removed" if rep.compressed else "same layer shapes") + (", BatchNorm folded" if spec.folded else "")
    print(f"{args.format}: {rep.path} ({rep.bytes / 1e6:.2f} MB), parameters {rep.params_before:,} -> "
          f"{rep.params_after:,} ({how})")
    print(f"verified on {rep.images} test images: max abs logit difference vs PyTorch {rep.max_abs_diff:.2e}")
    if batches:
        _latency(source, rep.path, batches, args.threads)
    return 0


def _batches(text: str) -> list[int]:
    from prunebench.errors import UserError

    try:
        out = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise UserError(f"--batch expects comma-separated batch sizes such as 1,16, got {text!r}") from None
    if not out or min(out) < 1:
        raise UserError(f"--batch expects batch sizes >= 1 such as 1,16, got {text!r}")
    return out


def _latency(source, pruned_path, batches: list[int], threads: int) -> None:
    import tempfile
    from pathlib import Path

    from prunebench.export import dense_onnx, onnx_latency

    shape = tuple(source.images.shape[1:])
    with tempfile.TemporaryDirectory() as folder:
        dense = dense_onnx(source, Path(folder) / "dense.onnx")
        print(f"onnxruntime latency, {threads} thread(s), median of 30 runs:")
        print(f"{'batch':>6s}{'unpruned ms':>14s}{'exported ms':>14s}{'speedup':>10s}")
        for b in batches:
            d = onnx_latency(dense, (b, *shape), threads=threads)
            p = onnx_latency(pruned_path, (b, *shape), threads=threads)
            print(f"{b:6d}{1e3 * d:14.3f}{1e3 * p:14.3f}{d / p:9.2f}x")
