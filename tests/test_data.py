"""IDX reader, dataset location + checksums, the saved validation split, device-resident batching."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from prunebench.data import DeviceLoader, load_dataset, load_splits
from prunebench.data.idx import read_idx, write_idx
from prunebench.data.mnist import FASHION_MD5
from prunebench.data.split import validation_indices
from prunebench.errors import UserError

from helpers import devices

FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_idx_round_trip(tmp_path: Path, suffix: str) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    write_idx(tmp_path / f"a{suffix}", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / f"a{suffix}"), arr)
    ints = np.arange(12, dtype=np.int32).reshape(3, 4) - 5
    write_idx(tmp_path / "b", ints)
    np.testing.assert_array_equal(read_idx(tmp_path / "b"), ints)


def test_idx_rejects_truncated_and_corrupt(tmp_path: Path) -> None:
    arr = np.zeros((4, 3, 3), dtype=np.uint8)
    write_idx(tmp_path / "ok", arr)
    raw = (tmp_path / "ok").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-1])
    (tmp_path / "badmagic").write_bytes(b"\x01\x02" + raw[2:])
    (tmp_path / "header").write_bytes(raw[:6])
    (tmp_path / "gz").write_bytes(gzip.compress(raw)[:-5])
    for name, msg in [("short", "truncated"), ("badmagic", "magic"), ("header", "header"), ("gz", "corrupt"),
                      ("missing", "not found")]:
        with pytest.raises(UserError, match=msg):
            read_idx(tmp_path / name)


def test_fashion_mnist_real_files() -> None:
    info, splits = load_splits("fashion-mnist")
    assert splits["train"].x.shape == (60000, 1, 28, 28) and splits["test"].x.shape == (10000, 1, 28, 28)
    assert splits["train"].x.dtype == torch.uint8
    # The official test set is balanced: exactly 1000 images per class.
    assert torch.bincount(splits["test"].y).tolist() == [1000] * 10
    assert info.num_classes == 10 and len(info.classes) == 10


def _copy_fashion(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for f in FASHION_MD5:
        shutil.copy(FASHION_DEBIAN / f, dest / f)
    return dest


def test_checksum_mismatch_and_missing_file(tmp_path: Path) -> None:
    root = _copy_fashion(tmp_path / "fm")
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(UserError, match="checksum mismatch .*t10k-labels"):
        load_splits("fashion-mnist", root)
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(UserError, match="missing"):
        load_splits("fashion-mnist", root)


def test_search_order_prefers_prunebench_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _copy_fashion(tmp_path / "data" / "fashion-mnist")
    (root / "train-images-idx3-ubyte.gz").write_bytes(b"x")  # a broken copy first in the search order
    monkeypatch.setenv("PRUNEBENCH_DATA", str(tmp_path / "data"))
    with pytest.raises(UserError, match="checksum mismatch"):
        load_splits("fashion-mnist")


def test_mnist_test_only(mnist_root: Path) -> None:
    info, splits = load_splits("mnist", mnist_root)
    assert set(splits) == {"test"} and len(splits["test"]) == 10000
    assert splits["test"].y[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known first MNIST test labels
    with pytest.raises(UserError, match="no train split"):
        load_dataset("mnist", mnist_root)


def test_validation_split_fixed_saved_and_disjoint(tmp_path: Path) -> None:
    a = validation_indices("toy", 1000, 0.1, seed=3, folder=tmp_path)
    saved = list(tmp_path.glob("toy-*.json"))
    assert len(saved) == 1 and len(a) == 100 and len(set(a.tolist())) == 100
    saved[0].write_text(str(list(range(100))))  # the saved file wins over recomputation
    assert validation_indices("toy", 1000, 0.1, seed=3, folder=tmp_path).tolist() == list(range(100))
    assert validation_indices("toy", 1000, 0.1, seed=4, folder=tmp_path).tolist() != list(range(100))
    with pytest.raises(UserError):
        validation_indices("toy", 1000, 1.5, folder=tmp_path)


def test_dataset_splits_do_not_overlap() -> None:
    data = load_dataset("fashion-mnist")
    assert len(data.train) == 54000 and len(data.val) == 6000
    # No validation image is a training image: compare raw bytes of a hash per image.
    def keys(x: torch.Tensor) -> set[int]:
        return set((x.flatten(1).long() * torch.arange(1, 785)).sum(1).tolist())
    overlap = keys(data.val.x) & keys(data.train.x)
    assert len(overlap) < 30  # a handful of exact duplicate images exist in Fashion-MNIST itself


def test_loader_deterministic_and_covers_epoch(fmnist) -> None:
    def epoch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(*DeviceLoader(fmnist.train, fmnist.info, 500, train=True, seed=seed))
        return torch.cat(xs), torch.cat(ys)

    x1, y1 = epoch(0)
    x2, y2 = epoch(0)
    x3, _ = epoch(1)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    assert len(y1) == 6000 and torch.equal(torch.bincount(y1), torch.bincount(fmnist.train.y))


def test_loader_chunking_does_not_change_batches(fmnist) -> None:
    from dataclasses import replace

    info = replace(fmnist.info, crop_padding=2, hflip=True)
    def epoch(chunk_bytes: int, train: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(DeviceLoader(fmnist.val, info, 96, train=train, seed=3, drop_last=False, chunk_bytes=chunk_bytes))

    for train in (True, False):
        one, some, whole = epoch(1, train), epoch(7 * 96 * 784 * 4, train), epoch(1 << 30, train)
        assert [len(y) for _, y in one] == [96] * 62 + [48]
        for (x1, y1), (x2, y2), (x3, y3) in zip(one, some, whole):
            assert torch.equal(x1, x2) and torch.equal(x1, x3) and torch.equal(y1, y2) and torch.equal(y1, y3)


def test_loader_eval_is_plain_normalization(fmnist) -> None:
    x, y = next(iter(DeviceLoader(fmnist.test, fmnist.info, 100, train=False)))
    expected = (fmnist.test.x[:100].float() / 255 - fmnist.info.mean[0]) / fmnist.info.std[0]
    assert torch.allclose(x, expected, atol=1e-5) and torch.equal(y, fmnist.test.y[:100])


def test_augmentation_crop_and_flip(fmnist) -> None:
    from dataclasses import replace

    info = replace(fmnist.info, crop_padding=2, hflip=True, mean=(0.0,), std=(1 / 255,))  # identity scaling
    split = fmnist.train.subset(slice(0, 256))
    x, _ = next(iter(DeviceLoader(split, info, 256, train=True, seed=0, drop_last=False)))
    # Every augmented image is a (possibly flipped) shifted window of the zero-padded original.
    padded = torch.nn.functional.pad(split.x.float(), (2, 2, 2, 2))
    # Order is shuffled; match each output to an original by trying all shifts and flips.
    matched, flipped = 0, 0
    for out in x:
        for i in range(256):
            for f in (False, True):
                src = padded[i, 0].flip(1) if f else padded[i, 0]
                if any(torch.equal(src[dy:dy + 28, dx:dx + 28], out[0]) for dy in range(5) for dx in range(5)):
                    matched, flipped = matched + 1, flipped + f
                    break
            else:
                continue
            break
        if matched >= 40:
            break
    assert matched == 40 and 5 < flipped < 35


@pytest.mark.parametrize("device", devices())
def test_loader_on_device_same_batches_as_cpu(fmnist, device: str) -> None:
    """The device-resident loader yields the same (normalized) batches on ``device`` as on the CPU."""
    ref = list(DeviceLoader(fmnist.test.subset(slice(0, 500)), fmnist.info, 128, train=False, device="cpu"))
    got = list(DeviceLoader(fmnist.test.subset(slice(0, 500)), fmnist.info, 128, train=False, device=device))
    assert len(got) == len(ref) == 4
    for (xa, ya), (xb, yb) in zip(ref, got):
        assert xb.device.type == torch.device(device).type
        assert torch.equal(ya, yb.cpu()) and torch.allclose(xa, xb.cpu(), atol=1e-6)
