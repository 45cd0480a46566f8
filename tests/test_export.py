"""``prunebench export``: the shipped file (ONNX in onnxruntime, TorchScript, safetensors checkpoint, CSR)
reproduces the PyTorch checkpoint on real images; compressed models really are smaller; bad input is one
line, exit 2, nothing written."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from helpers import randomize_bn
from prunebench.cli.main import main
from prunebench.errors import UserError

ort = pytest.importorskip("onnxruntime")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _npz(path: Path, channels: int, size: int, n: int = 48) -> Path:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8)
    y = np.arange(n) % 10
    np.savez(path, x_train=x, y_train=y, x_test=x[:32], y_test=y[:32])
    return path


def _ckpt(folder: Path, name: str, model: nn.Module, meta: dict, method: str | None, ratio: float = 0.5) -> Path:
    from prunebench.pruning import prune
    from prunebench.store import save_checkpoint

    randomize_bn(model)
    masks = None
    if method:
        state = prune(model, method, ratio, seed=0)
        masks = state.masks
        meta = {**meta, "pruning": [{"method": method, "ratio": ratio}]}
    return save_checkpoint(folder / name, model.eval(), meta, masks)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    from prunebench.models import create_model
    from prunebench.models.factory import build_user_model

    d = tmp_path_factory.mktemp("export")
    cifar = _npz(d / "rgb.npz", 3, 32)
    gray = _npz(d / "gray.npz", 1, 28)
    torch.manual_seed(0)
    kw = {"in_channels": 3, "num_classes": 10, "width": 1.0, "image_size": 32}
    base = {"model": "resnet20", "model_kwargs": kw, "dataset": "npz", "data_root": str(cifar)}
    spec = f"{EXAMPLES / 'my_model.py'}:build"
    user_kw = {"in_channels": 1, "num_classes": 10, "channels": 8}
    user = {"model": "DepthwiseResNet", "model_factory": spec, "model_kwargs": user_kw, "dataset": "npz",
            "data_root": str(gray)}
    return {"dir": d,
            "ft": _ckpt(d, "r20-ft50", create_model("resnet20", **kw), base, "ft"),
            "wt": _ckpt(d, "r20-wt80", create_model("resnet20", **kw), base, "wt", 0.8),
            "dense": _ckpt(d, "r20-dense", create_model("resnet20", **kw), base, None),
            "user": _ckpt(d, "user-ft50", build_user_model(spec, user_kw), user, "ft")}


def _run_file(path: Path, x: torch.Tensor) -> np.ndarray:
    """The written ONNX file, run by onnxruntime directly (not through prunebench's runner)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


@pytest.mark.parametrize("which", ["ft", "user"])
def test_onnx_of_a_compressed_model_matches_pytorch_in_onnxruntime(ckpts, which, tmp_path):
    from prunebench.export import export, load_source

    source = load_source(ckpts[which], images=32)
    rep = export(source, "onnx", tmp_path / "m.onnx")
    assert rep.compressed and rep.params_after < rep.params_before  # channels physically removed
    want = source.model(source.images).detach().numpy()
    got = _run_file(rep.path, source.images)
    assert np.abs(got - want).max() < 1e-4
    assert rep.max_abs_diff == pytest.approx(float(np.abs(got - want).max()), abs=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary left beside it
    batch = _run_file(rep.path, source.images[:5])  # dynamic batch axis
    assert batch.shape == (5, 10)


def test_compressed_onnx_holds_fewer_weights_than_the_unpruned_shape(ckpts, tmp_path):
    import onnx

    from prunebench.export import dense_onnx, export, load_source

    source = load_source(ckpts["ft"], images=8)
    pruned = export(source, "onnx", tmp_path / "ft.onnx").path
    dense = dense_onnx(source, tmp_path / "dense.onnx")

    def weights(p: Path) -> int:
        return sum(int(np.prod(t.dims)) for t in onnx.load(str(p)).graph.initializer)

    assert weights(pruned) < 0.75 * weights(dense)  # ft 50% of the filters: about a quarter to half the weights


@pytest.mark.parametrize("fmt,suffix", [("torchscript", ".pt"), ("safetensors", ".safetensors"), ("csr", ".safetensors")])
def test_other_formats_reload_and_match(ckpts, tmp_path, fmt, suffix):
    from prunebench.export import export, load_source

    source = load_source(ckpts["wt" if fmt == "csr" else "ft"], images=16)
    rep = export(source, fmt, tmp_path / f"m{suffix}")
    want = source.model(source.images).detach()
    if fmt == "torchscript":
        got = torch.jit.load(str(rep.path))(source.images)
    elif fmt == "safetensors":
        from prunebench.store import load_checkpoint

        ck = load_checkpoint(rep.path)
        assert sum(p.numel() for p in ck.model.parameters()) == rep.params_after < rep.params_before
        got = ck.model.eval()(source.images)
    else:
        from prunebench.pruning.compress import load_csr

        from prunebench.store import load_checkpoint

        model = load_checkpoint(ckpts["wt"]).model.eval()  # rebuilt through the checkpoint, the CSR state loaded
        model.load_state_dict(load_csr(rep.path))
        got = model(source.images)
        assert rep.bytes < 0.6 * Path(ckpts["wt"]).stat().st_size  # 80% pruned: CSR is much smaller
    assert float((got.detach() - want).abs().max()) < 1e-4


def test_unstructured_onnx_keeps_the_shape(ckpts, tmp_path):
    from prunebench.export import export, load_source

    rep = export(load_source(ckpts["wt"], images=8), "onnx", tmp_path / "wt.onnx")
    assert not rep.compressed and rep.params_after < rep.params_before  # BatchNorm folded only ...
    source = load_source(ckpts["dense"], images=8)
    dense = export(source, "onnx", tmp_path / "dense.onnx")
    assert rep.params_after == dense.params_after  # ... the same network as the dense one


def test_cli_export_with_latency_prints_the_table(ckpts, tmp_path, capsys):
    out = tmp_path / "ft.onnx"
    assert main(["export", str(ckpts["ft"]), "--format", "onnx", "--out", str(out), "--latency", "--batch", "1,4"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "channels removed" in text and "max abs logit difference" in text
    rows = [line.split() for line in text.splitlines() if line.strip().startswith(("1 ", "4 "))]
    assert [r[0] for r in rows] == ["1", "4"]
    for r in rows:  # batch, unpruned ms, exported ms, speedup = unpruned / exported
        assert float(r[3].rstrip("x")) == pytest.approx(float(r[1]) / float(r[2]), rel=0.02, abs=0.01)


class Untraceable(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(torch.fft.rfft2(self.conv(x)).abs().mean((2, 3)))  # no ONNX symbolic for rfft2


def build_untraceable(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    return Untraceable(in_channels, num_classes)


@pytest.fixture(scope="module")
def untraceable(ckpts):
    from prunebench.store import save_checkpoint

    spec = f"{Path(__file__).resolve()}:build_untraceable"
    meta = {"model": "Untraceable", "model_factory": spec, "model_kwargs": {"in_channels": 1, "num_classes": 10},
            "dataset": "npz", "data_root": str(ckpts["dir"] / "gray.npz")}
    return save_checkpoint(ckpts["dir"] / "untraceable", Untraceable(), meta)


@pytest.mark.parametrize("extra,message", [
    (["--format", "onnx", "--out", "{d}/m.pt"], "should end in .onnx"),
    (["--format", "onnxx", "--out", "{d}/m.onnx"], "onnx"),
    (["--format", "torchscript", "--out", "{d}/m.pt", "--latency"], "use it with --format onnx"),
    (["--format", "onnx", "--out", "{d}/m.onnx", "--latency", "--batch", "0"], "batch sizes >= 1"),
    (["--format", "onnx", "--out", "{d}/m.onnx", "--images", "0"], "--images must be >= 1"),
    (["--format", "csr", "--out", "{d}/m.safetensors", "@dense"], "the checkpoint is dense"),
    (["--format", "onnx", "--out", "{d}/m.onnx", "@untraceable"], "onnx cannot export Untraceable"),
])
def test_bad_export_input_is_one_line_exit_2_nothing_written(ckpts, untraceable, tmp_path, capsys, extra, message):
    which = next((e[1:] for e in extra if e.startswith("@")), "ft")
    ckpt = untraceable if which == "untraceable" else ckpts[which]
    args = [e.format(d=tmp_path / "out") for e in extra if not e.startswith("@")]
    assert main(["export", str(ckpt), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_file_that_disagrees_is_not_written(ckpts, tmp_path):
    from prunebench.export import export, load_source

    with pytest.raises(UserError, match="disagrees with the PyTorch model"):
        export(load_source(ckpts["ft"], images=8), "onnx", tmp_path / "m.onnx", atol=1e-12)  # folding rounds
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime_names_the_extra(ckpts, tmp_path, monkeypatch):
    from prunebench.export import export, load_source

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(UserError, match=r"pip install 'prunebench\[export\]'"):
        export(load_source(ckpts["ft"], images=8), "onnx", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_import_prunebench_needs_no_onnx():
    import subprocess

    code = ("import sys; sys.modules['onnx'] = None; sys.modules['onnxruntime'] = None; import prunebench, "
            "prunebench.export; print(sorted(prunebench.export.FORMATS.names()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['csr', 'onnx', 'safetensors', 'torchscript']"
