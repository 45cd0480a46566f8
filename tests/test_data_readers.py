"""CIFAR / SVHN / npz readers on small files written here in exactly the official formats."""
from __future__ import annotations

import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
import scipy.io
import torch

from prunebench.data import cifar, npz, svhn
from prunebench.data.base import DataInfo
from prunebench.data.registry import DATASETS
from prunebench.errors import UserError

SPECS = {"cifar10": cifar.CIFAR10, "cifar100": cifar.CIFAR100}
MARK = 250  # random pixels stay below 200, so one planted MARK value is unique


# --------------------------------------------------------------------------------- pickle writers


def _py2_str(b: bytes) -> bytes:
    """A Python 2 ``str`` as cPickle protocol 2 writes it (SHORT_BINSTRING / BINSTRING)."""
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def _py2_int(i: int) -> bytes:
    return b"K" + bytes([i]) if 0 <= i < 256 else b"J" + struct.pack("<i", i)


def _py2_obj(v) -> bytes:
    if isinstance(v, bytes):
        return _py2_str(v)
    if isinstance(v, int):
        return _py2_int(v)
    if isinstance(v, list):
        return b"](" + b"".join(_py2_obj(e) for e in v) + b"e"
    if isinstance(v, np.ndarray):  # numpy 1.x under Python 2: ndarray.__reduce__ + dtype.__reduce__
        assert v.dtype == np.uint8 and v.ndim == 2
        dtype = (b"cnumpy\ndtype\n" + _py2_str(b"u1") + b"K\x00K\x01\x87R"
                 + b"(K\x03" + _py2_str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
        return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2_str(b"b") + b"\x87R"
                + b"(K\x01" + _py2_int(v.shape[0]) + _py2_int(v.shape[1]) + b"\x86" + dtype
                + b"\x89" + _py2_str(v.tobytes()) + b"tb")
    raise TypeError(type(v))


def py2_pickle(d: dict) -> bytes:
    """The byte layout of the original batch files: a Python 2 cPickle (protocol 2) of a str-keyed dict."""
    return b"\x80\x02}(" + b"".join(_py2_obj(k) + _py2_obj(v) for k, v in d.items()) + b"u."


def dump(d: dict, fmt) -> bytes:
    return py2_pickle(d) if fmt == "py2" else pickle.dumps(d, protocol=fmt)


# --------------------------------------------------------------------------------- CIFAR fixtures


def make_batch(spec: cifar.CifarSpec, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 200, (n, 3072), dtype=np.uint8)
    k = len(spec.classes)
    labels = [int(v) for v in rng.integers(0, k, n)]
    labels[0] = k - 1  # the top class must be accepted
    d = {b"batch_label": b"batch %d" % seed, b"filenames": [b"img_%d.png" % i for i in range(n)]}
    if spec is cifar.CIFAR100:
        d |= {b"fine_labels": labels, b"coarse_labels": [v // 5 for v in labels]}
    else:
        d[b"labels"] = labels
    d[b"data"] = data
    return d


def write_cifar(tmp_path, spec: cifar.CifarSpec, fmt="py2", n: int = 5) -> dict:
    """Write the extracted folder (and a .tar.gz of it); return the expected (x, y) per split."""
    folder = tmp_path / spec.folder
    folder.mkdir()
    expected = {}
    for s, (split, files) in enumerate((("train", spec.train_files), ("test", spec.test_files))):
        xs, ys = [], []
        for i, f in enumerate(files):
            d = make_batch(spec, n, seed=10 * s + i)
            (folder / f).write_bytes(dump(d, fmt))
            xs.append(d[b"data"].reshape(n, 3, 32, 32))
            ys.append(d[spec.label_key.encode()])
        expected[split] = (np.concatenate(xs), np.concatenate(ys))
    (folder / ("meta" if spec is cifar.CIFAR100 else "batches.meta")).write_bytes(dump({b"num_cases_per_batch": n}, fmt))
    with tarfile.open(tmp_path / spec.archive, "w:gz") as tar:
        tar.add(folder, arcname=spec.folder)
    return expected


@pytest.mark.parametrize("layout", ["folder", "parent", "archive"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_cifar_reads_official_layouts(tmp_path, name, layout):
    spec = SPECS[name]
    expected = write_cifar(tmp_path, spec)
    root = {"folder": tmp_path / spec.folder, "parent": tmp_path, "archive": tmp_path / spec.archive}[layout]
    if layout == "parent":
        (tmp_path / spec.archive).unlink()  # the folder alone must be found
    info, splits = DATASETS.get(name)(root)
    assert isinstance(info, DataInfo) and info.name == name
    assert_matches_spec(info)
    assert info.num_classes == len(info.classes) == (10 if name == "cifar10" else 100)
    assert (info.crop_padding, info.hflip, info.in_channels, info.image_size) == (4, True, 3, (32, 32))
    assert info.mean == spec.mean and info.std == spec.std
    assert set(splits) == {"train", "test"}
    for split, (x, y) in expected.items():
        got = splits[split]
        assert got.x.dtype == torch.uint8 and got.y.dtype == torch.int64
        assert tuple(got.x.shape) == (len(x), 3, 32, 32)
        assert torch.equal(got.x, torch.from_numpy(x)) and torch.equal(got.y, torch.from_numpy(y))


@pytest.mark.parametrize("fmt", ["py2", 2, 4, 5])
def test_pixel_order_and_every_pickle_protocol(fmt):
    data = np.zeros((2, 3072), np.uint8)
    c, h, w = 1, 5, 7  # green plane, row 5, column 7 of image 1
    data[1, c * 1024 + h * 32 + w] = MARK
    d = {b"labels": [3, 9], b"data": data}
    got = cifar.restricted_loads(dump(d, fmt), "batch")
    assert got[b"labels"] == [3, 9]
    assert got[b"data"].dtype == np.uint8 and got[b"data"].shape == (2, 3072)
    x, y = cifar.parse_batch(dump(d, fmt), "batch", "labels", 10)
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [3, 9]
    assert x[1, c, h, w] == MARK and int((x == MARK).sum()) == 1


def test_fortran_ordered_and_big_endian_arrays_keep_their_values():
    for a in (np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)), np.arange(5, dtype=">i4")):
        got = cifar.restricted_loads(pickle.dumps({"a": a}, protocol=2), "f")["a"]
        assert np.array_equal(got, a) and got.dtype == a.dtype


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _evil_payloads(marker) -> list[bytes]:
    cmd = f"touch {marker}"
    return [
        pickle.dumps({b"data": _Evil(os.system, cmd)}, protocol=2),
        pickle.dumps(_Evil(eval, f"__import__('os').system({cmd!r})"), protocol=4),
        pickle.dumps(_Evil(np.load, str(marker)), protocol=5),  # a numpy global that is not on the list
        b"\x80\x02cposix\nsystem\n" + _py2_str(cmd.encode()) + b"\x85R.",  # old-style GLOBAL opcode
        b"\x80\x02(" + _py2_str(cmd.encode()) + b"ios\nsystem\n.",  # INST opcode
    ]


@pytest.mark.parametrize("which", range(5))
def test_forbidden_globals_are_refused_without_running(tmp_path, which):
    marker = tmp_path / "pwned"
    payload = _evil_payloads(marker)[which]
    with pytest.raises(UserError, match="refusing to load"):
        cifar.restricted_loads(payload, "evil.pkl")
    assert not marker.exists()


def test_forbidden_global_in_a_batch_file_names_the_file(tmp_path):
    write_cifar(tmp_path, cifar.CIFAR10)
    marker = tmp_path / "pwned"
    (tmp_path / cifar.CIFAR10.folder / "data_batch_3").write_bytes(_evil_payloads(marker)[0])
    with pytest.raises(UserError, match="data_batch_3.*refusing to load posix.system"):
        cifar.cifar10(tmp_path / cifar.CIFAR10.folder)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps({b"data": np.array([1, "a"], dtype=object)}, protocol=2),  # object arrays
    pickle.dumps(np.zeros(2, dtype=[("a", "u1")]), protocol=4),  # structured dtype
    pickle.dumps(np.zeros(2, dtype="U3"), protocol=2),  # non-numeric dtype
    b"\x80\x02cnumpy\ndtype\nN}X\x01\x00\x00\x00xK\x01s\x86b.",  # BUILD: setattr on an allowed global
    b"\x80\x02cnumpy\ndtype\n}X\x01\x00\x00\x00xK\x01sb.",  # BUILD: write into its __dict__
    b"\x80\x02cnumpy\nndarray\nK\x03\x85R.",  # calling numpy.ndarray directly
    b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R.",  # no data given
    # _frombuffer claiming 2**30 bytes from a 3-byte buffer
    b"\x80\x02cnumpy._core.numeric\n_frombuffer\n(C\x03abccnumpy\ndtype\nU\x02u1K\x00K\x01\x87RJ\x00\x00\x00\x40\x85U\x01CtR.",
    b"\x80\x02cnumpy\ndtype\n)\x81.",  # NEWOBJ on an allowed global
], ids=["object", "structured", "unicode", "build-setattr", "build-dict", "ndarray-call", "no-state", "size-mismatch", "newobj"])
def test_non_plain_arrays_and_tricks_are_refused(payload):
    with pytest.raises(UserError):
        cifar.restricted_loads(payload, "x.pkl")
    assert not hasattr(cifar._ALLOWED[("numpy", "dtype")], "x")


def test_truncated_and_corrupt_batches_name_the_file(tmp_path):
    write_cifar(tmp_path, cifar.CIFAR10)
    folder = tmp_path / cifar.CIFAR10.folder
    good = (folder / "test_batch").read_bytes()
    for bad in (good[: len(good) // 2], good[:-1], b"\x00garbage" * 10, b""):
        (folder / "test_batch").write_bytes(bad)
        with pytest.raises(UserError, match="test_batch.*(corrupt|truncated)"):
            cifar.cifar10(folder)


def test_truncated_or_foreign_archive_is_a_user_error(tmp_path):
    write_cifar(tmp_path, cifar.CIFAR10)
    archive = tmp_path / cifar.CIFAR10.archive
    raw = archive.read_bytes()
    for bad in (raw[: len(raw) // 2], raw[:100], b"not a tar at all"):
        archive.write_bytes(bad)
        with pytest.raises(UserError, match=cifar.CIFAR10.archive):
            cifar.cifar10(archive)


def test_archive_missing_a_member_is_a_user_error(tmp_path):
    spec = cifar.CIFAR10
    write_cifar(tmp_path, spec)
    (tmp_path / spec.folder / "data_batch_4").unlink()
    with tarfile.open(tmp_path / spec.archive, "w:gz") as tar:
        tar.add(tmp_path / spec.folder, arcname=spec.folder)
    with pytest.raises(UserError, match="data_batch_4"):
        cifar.cifar10(tmp_path / spec.archive)
    with pytest.raises(UserError, match="data_batch_4"):  # a half-extracted folder, too
        cifar.cifar10(tmp_path / spec.folder)


def test_folder_with_only_the_test_batch_gives_the_test_split(tmp_path):
    spec = cifar.CIFAR10
    expected = write_cifar(tmp_path, spec)
    for f in spec.train_files:
        (tmp_path / spec.folder / f).unlink()
    _, splits = cifar.cifar10(tmp_path / spec.folder)
    assert set(splits) == {"test"} and torch.equal(splits["test"].y, torch.from_numpy(expected["test"][1]))


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("defect", ["label-too-big", "negative-label", "short-labels", "wrong-width", "float-data", "no-labels"])
def test_bad_batch_contents_are_user_errors(tmp_path, name, defect):
    spec = SPECS[name]
    write_cifar(tmp_path, spec)
    d = make_batch(spec, 5, seed=1)
    key = spec.label_key.encode()
    if defect == "label-too-big":
        d[key][2] = len(spec.classes)
    elif defect == "negative-label":
        d[key][2] = -1
    elif defect == "short-labels":
        d[key] = d[key][:-1]
    elif defect == "wrong-width":
        d[b"data"] = d[b"data"][:, :3000].copy()
    elif defect == "float-data":
        d[b"data"] = d[b"data"].astype(np.float32)
    else:
        del d[key]
    (tmp_path / spec.folder / spec.test_files[0]).write_bytes(py2_pickle(d) if defect != "float-data" else pickle.dumps(d))
    with pytest.raises(UserError, match=f"{spec.folder}/{spec.test_files[0]}[: ]"):
        DATASETS.get(name)(tmp_path / spec.folder)


def test_default_root_searches_the_standard_folders_and_checks_md5(tmp_path, monkeypatch):
    """root=None goes through sources.find_or_fetch: our small archive sits in $PRUNEBENCH_DATA/cifar10
    but is not the official file, so its MD5 must be rejected (and nothing downloaded)."""
    monkeypatch.setenv("PRUNEBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    write_cifar(tmp_path / "data" / "cifar10", cifar.CIFAR10)
    with pytest.raises(UserError, match="checksum mismatch.*cifar-10-python.tar.gz"):
        cifar.cifar10(None)
    (tmp_path / "data" / "svhn").mkdir()
    for f in svhn.FILES:
        write_svhn(tmp_path / "data" / "svhn" / f, 2, seed=0)
    with pytest.raises(UserError, match="checksum mismatch.*_32x32.mat"):
        svhn.svhn(None)
    assert not (tmp_path / "cache").exists()


def test_cifar_missing_root_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cifar-10-python.tar.gz"):
        cifar.cifar10(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        cifar.cifar100(tmp_path / "nope")


# --------------------------------------------------------------------------------- SVHN


def write_svhn(path, n: int, seed: int, labels=None):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 200, (32, 32, 3, n), dtype=np.uint8)  # H, W, C, N as in the official files
    y = (np.arange(n) % 10 + 1 if labels is None else np.asarray(labels)).astype(np.uint8).reshape(n, 1)
    scipy.io.savemat(str(path), {"X": x, "y": y})
    return x, y


def test_svhn_reads_official_mat_layout_and_maps_10_to_0(tmp_path):
    x, y = write_svhn(tmp_path / "test_32x32.mat", 12, seed=0)
    x[5, 7, 2, 3] = MARK
    scipy.io.savemat(str(tmp_path / "test_32x32.mat"), {"X": x, "y": y})
    info, splits = DATASETS.get("svhn")(tmp_path)
    assert_matches_spec(info)
    assert set(splits) == {"test"}  # only the files present
    assert info.num_classes == 10 and info.image_size == (32, 32) and not info.hflip
    t = splits["test"]
    assert t.x.dtype == torch.uint8 and tuple(t.x.shape) == (12, 3, 32, 32)
    assert t.x[3, 2, 5, 7] == MARK and int((t.x == MARK).sum()) == 1
    assert t.y.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    assert torch.equal(t.x, torch.from_numpy(x.transpose(3, 2, 0, 1).copy()))


def test_svhn_loads_both_splits_and_a_single_file(tmp_path):
    write_svhn(tmp_path / "train_32x32.mat", 4, seed=1)
    write_svhn(tmp_path / "test_32x32.mat", 3, seed=2)
    _, splits = svhn.svhn(tmp_path)
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "test": 3}
    _, one = svhn.svhn(tmp_path / "train_32x32.mat")
    assert set(one) == {"train"} and torch.equal(one["train"].x, splits["train"].x)


@pytest.mark.parametrize("labels", [[0, 1, 2], [1, 11, 2]])
def test_svhn_labels_outside_1_to_10_are_user_errors(tmp_path, labels):
    write_svhn(tmp_path / "test_32x32.mat", 3, seed=0, labels=labels)
    with pytest.raises(UserError, match="1..10"):
        svhn.svhn(tmp_path)


def test_svhn_corrupt_truncated_or_foreign_files_are_user_errors(tmp_path):
    path = tmp_path / "test_32x32.mat"
    write_svhn(path, 20, seed=0)
    raw = path.read_bytes()
    for bad in (raw[: len(raw) // 2], raw[:100], b"garbage" * 40):
        path.write_bytes(bad)
        with pytest.raises(UserError, match="test_32x32.mat"):
            svhn.svhn(tmp_path)
    scipy.io.savemat(str(path), {"images": np.zeros((32, 32, 3, 2), np.uint8)})
    with pytest.raises(UserError, match="lacks the variable X"):
        svhn.svhn(tmp_path)
    scipy.io.savemat(str(path), {"X": np.zeros((28, 28, 1, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(UserError, match="32 x 32 x 3 x N"):
        svhn.svhn(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no SVHN files"):
        svhn.svhn(tmp_path / "empty")


# --------------------------------------------------------------------------------- npz


def _images(n=6, c=3, h=5, w=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_npz_both_layouts_give_the_same_nchw_tensors(tmp_path, layout):
    xtr, xte = _images(6), _images(3, seed=1)
    xtr[2, 1, 3, 0] = 77
    ytr, yte = np.array([0, 1, 2, 3, 4, 0]), np.array([4, 0, 1], dtype=np.uint8)
    conv = (lambda a: a) if layout == "nchw" else (lambda a: a.transpose(0, 2, 3, 1))
    np.savez(tmp_path / "d.npz", x_train=conv(xtr), y_train=ytr, x_test=conv(xte), y_test=yte,
             classes=np.array(list("abcde")))
    info, splits = DATASETS.get("npz")(tmp_path / "d.npz")
    assert torch.equal(splits["train"].x, torch.from_numpy(xtr)) and torch.equal(splits["test"].x, torch.from_numpy(xte))
    assert splits["train"].x[2, 1, 3, 0] == 77
    assert splits["test"].y.dtype == torch.int64 and splits["test"].y.tolist() == [4, 0, 1]
    assert (info.num_classes, info.in_channels, info.image_size, info.classes) == (5, 3, (5, 4), tuple("abcde"))
    f = xtr.astype(np.float64) / 255
    assert np.allclose(info.mean, f.mean(axis=(0, 2, 3))) and np.allclose(info.std, f.std(axis=(0, 2, 3)))


def test_npz_grayscale_and_the_ambiguous_layout_rule(tmp_path):
    x = _images(4, c=1)[:, 0]  # N x H x W
    np.savez(tmp_path / "g.npz", x_train=x, y_train=np.arange(4), x_test=x[:2], y_test=np.arange(2))
    info, splits = npz.load_npz(tmp_path / "g.npz")
    assert info.in_channels == 1 and tuple(splits["train"].x.shape) == (4, 1, 5, 4)
    amb = _images(2, c=3, h=4, w=3)  # axis 1 and axis 3 both have size 3: read as NCHW
    assert npz.to_nchw(amb, "x").shape == (2, 3, 4, 3) and np.array_equal(npz.to_nchw(amb, "x"), amb)
    assert npz.to_nchw(_images(2, c=5, h=6, w=3), "x").shape == (2, 3, 5, 6)  # only axis 3 qualifies: NHWC


def _write(tmp_path, **over):
    arrays = dict(x_train=_images(6), y_train=np.arange(6) % 3, x_test=_images(2), y_test=np.array([0, 2]))
    arrays.update(over)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(tmp_path / "d.npz", **arrays)
    return tmp_path / "d.npz"


@pytest.mark.parametrize("over, match", [
    (dict(x_train=_images(6).astype(np.float32)), "x_train must be uint8"),
    (dict(y_train=np.array([0, 1, -1, 0, 1, 2])), "y_train holds negative"),
    (dict(y_test=np.array([0.0, 1.0])), "y_test must hold integer"),
    (dict(y_train=np.arange(5)), "y_train has shape"),
    (dict(x_test=None), "lacks x_test"),
    (dict(x_test=_images(2, h=6)), "same image shape"),
    (dict(x_train=np.zeros((6, 5, 5, 5), np.uint8)), "no channel axis"),
    (dict(y_train=np.array([0, 1, 2, "x", 0, 1], dtype=object)), "object array"),
])
def test_npz_bad_contents_name_the_key_and_the_fix(tmp_path, over, match):
    with pytest.raises(UserError, match=match):
        npz.load_npz(_write(tmp_path, **over))


def test_npz_corrupt_file_and_missing_root(tmp_path):
    path = _write(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="d.npz"):
        npz.load_npz(path)
    with pytest.raises(UserError, match="--data-root FILE.npz"):
        DATASETS.get("npz")(None)
    with pytest.raises(UserError, match="--data-root FILE.npz"):
        npz.load_npz(tmp_path / "absent.npz")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "npz"])
def test_readers_are_registered(name):
    assert name in DATASETS and callable(DATASETS.get(name))


def assert_matches_spec(info: DataInfo) -> None:
    """The registered metadata (known before loading) agrees with what the loader returns."""
    spec = DATASETS.spec(info.name)
    assert (spec.channels, spec.size, spec.classes) == (info.in_channels, info.image_size[0], info.num_classes)


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_spec_metadata(name):
    spec = DATASETS.spec(name)
    assert spec.summary  # the listing's one-line description (the loader's docstring)
    known = (spec.channels, spec.size, spec.classes)
    assert all(v is None for v in known) or (spec.channels in (1, 3) and spec.size >= 8 and spec.classes >= 2)
