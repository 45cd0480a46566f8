"""``prunebench corrupt``: a picture grid of every corruption x severity, to look at with your eyes."""
from __future__ import annotations

import argparse

EXAMPLE = "example: prunebench corrupt --dataset fashion-mnist --out grid.png"
MAX_IMAGES = 32  # a grid to look at: 19 x 5 cells of N images each; more only costs memory (GBs at 100000)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corrupt", help="draw every corruption x severity on a few test images", description=__doc__,
                       epilog=EXAMPLE)
    p.add_argument("--dataset", default="fashion-mnist", help="dataset whose test images are shown")
    p.add_argument("--data-root", help="folder holding the dataset")
    p.add_argument("--images", type=int, default=3, help=f"how many test images per cell (default 3, at most {MAX_IMAGES})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from prunebench.data import load_splits
    from prunebench.errors import UserError
    from prunebench.evaluation.corruptions.grid import corruption_grid
    from prunebench.outpaths import check_out_file

    if not 1 <= args.images <= MAX_IMAGES:
        raise UserError(f"--images must be between 1 and {MAX_IMAGES} (images per grid cell), got {args.images}")
    if not args.out.lower().endswith(".png"):
        raise UserError(f"--out must name a .png file, got {args.out!r}")
    check_out_file(args.out, "--out")
    _, splits = load_splits(args.dataset, args.data_root)
    split = splits.get("test") or next(iter(splits.values()))
    path = corruption_grid(split.x[: args.images], args.out, seed=args.seed, n_images=args.images)
    print(f"wrote {path}")
    return 0
