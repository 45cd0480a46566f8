"""CIFAR-10 / CIFAR-100 readers for the official "python version" archives (restricted unpickling).

The official batch files are Python 2 pickles of a dict: ``b"data"`` is a uint8 array of shape
N x 3072 (each row holds the red, green and blue 32x32 planes, each row-major, so
``data.reshape(N, 3, 32, 32)`` is NCHW) and ``b"labels"`` / ``b"fine_labels"`` a list of ints.

Why :func:`restricted_loads` is safe although the project never unpickles arbitrary content:
unpickling is dangerous only because a pickle may name any importable global (``os.system``,
``builtins.eval``) and call it. ``find_class`` is the single door through which the ``GLOBAL``,
``STACK_GLOBAL``, ``INST`` and ``EXT*`` opcodes obtain callables, and ours hands out only our own
stand-ins, chosen by exact (module, name): for numpy's ``_reconstruct``, ``ndarray``, ``dtype`` and
``_frombuffer`` (what an array pickle names, under numpy 1.x ``numpy.core`` and 2.x ``numpy._core``)
and for ``_codecs.encode`` (Python 3's way to write bytes at protocol 2; latin-1 only). Any other
name raises :class:`UserError` before anything is imported or called. The stand-ins
* never hand pickled state to numpy: they record shape, dtype code and raw bytes in inert stubs,
  check them (plain numeric dtypes only -- no object, structured or sub-array dtypes -- and a byte
  count equal to the shape's) and only then build the array with ``np.frombuffer``, which cannot
  make object arrays or read past its buffer;
* have ``__slots__ = ()`` and no ``__setstate__``, so ``BUILD`` cannot set attributes on them (no
  state poisoning between loads), and are not classes, so ``NEWOBJ`` on them fails.
Persistent ids are refused (no ``persistent_load``) and no out-of-band buffers are supplied. What
remains is what any pickle builds without globals: numbers, strings, bytes, lists, tuples, dicts.
"""
from __future__ import annotations

import io
import math
import pickle
import posixpath
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prunebench.data.base import DataInfo, Split
from prunebench.data.registry import DATASETS
from prunebench.errors import UserError

_MAX_MEMBER_BYTES = 512 << 20  # the largest official member (CIFAR-100 train) is ~160 MB
_NUMERIC_CODES = {f"{k}{n}" for k in "iuf" for n in (1, 2, 4, 8)} | {"b1"}


class _Token:
    """Base of the objects ``find_class`` may return: no attributes, no state, not a class."""

    __slots__ = ()


class _NdarrayToken(_Token):
    """Stands for ``numpy.ndarray`` as the first argument of ``_reconstruct``; not callable."""

    __slots__ = ()


_NDARRAY = _NdarrayToken()


class _DtypeStub:
    """Inert record of a pickled ``numpy.dtype(code, align, copy)`` plus its ``BUILD`` state."""

    __slots__ = ("code", "endian")

    def __init__(self, code: Any) -> None:
        self.code = code.decode("ascii") if isinstance(code, bytes) else code
        self.endian: str | None = None

    def __setstate__(self, state: Any) -> None:
        # numpy's dtype state: (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
        if not isinstance(state, tuple) or len(state) < 5 or any(s is not None for s in state[2:5]):
            raise pickle.UnpicklingError("only plain numeric dtypes are allowed (no sub-arrays or fields)")
        endian = state[1].decode("ascii") if isinstance(state[1], bytes) else state[1]
        if endian not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"bad dtype byte order {endian!r}")
        self.endian = endian

    def resolve(self) -> np.dtype:
        if not isinstance(self.code, str) or self.code not in _NUMERIC_CODES:
            raise pickle.UnpicklingError(f"dtype {self.code!r} is not a plain numeric dtype")
        return np.dtype((self.endian or "=") + self.code)


class _ArrayStub:
    """Inert record of a pickled array; ``array`` is set once shape, dtype and bytes check out."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def fill(self, raw: Any, dtype: Any, shape: Any, fortran: bool) -> None:
        if self.array is not None:
            raise pickle.UnpicklingError("array state set twice")
        if not isinstance(dtype, _DtypeStub):
            raise pickle.UnpicklingError("array dtype is not a numpy dtype")
        if isinstance(raw, str):  # numpy 1.x under encoding="latin1"
            raw = raw.encode("latin-1")
        if not isinstance(raw, (bytes, bytearray)):
            raise pickle.UnpicklingError("array data is not a byte string")
        if not isinstance(shape, tuple) or not all(type(s) is int and s >= 0 for s in shape):
            raise pickle.UnpicklingError(f"bad array shape {shape!r}")
        dt = dtype.resolve()
        need = math.prod(shape) * dt.itemsize  # exact Python ints: no overflow
        if need != len(raw):
            raise pickle.UnpicklingError(f"array of shape {shape} {dt} needs {need} bytes, got {len(raw)}")
        flat = np.frombuffer(raw, dtype=dt)
        self.array = flat.reshape(shape, order="F" if fortran else "C")

    def __setstate__(self, state: Any) -> None:
        # ndarray state: (version, shape, dtype, is_fortran, raw) or the old (shape, dtype, is_fortran, raw)
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("bad ndarray state")
        shape, dtype, fortran, raw = state[-4:]
        self.fill(raw, dtype, shape, bool(fortran))


class _Reconstruct(_Token):
    __slots__ = ()

    def __call__(self, subtype: Any, shape: Any, typecode: Any) -> _ArrayStub:
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError("_reconstruct may only build a plain numpy.ndarray")
        return _ArrayStub()


class _Dtype(_Token):
    __slots__ = ()

    def __call__(self, code: Any, align: Any = False, copy: Any = True) -> _DtypeStub:
        if not isinstance(code, (str, bytes)):
            raise pickle.UnpicklingError("dtype code must be a string")
        return _DtypeStub(code)


class _Frombuffer(_Token):
    __slots__ = ()

    def __call__(self, buf: Any, dtype: Any, shape: Any, order: Any = "C") -> _ArrayStub:
        stub = _ArrayStub()
        stub.fill(buf, dtype, shape, order in ("F", b"F"))
        return stub


class _Latin1Encode(_Token):
    __slots__ = ()

    def __call__(self, text: Any, encoding: Any = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError("_codecs.encode is only allowed as latin-1 text -> bytes")
        return text.encode("latin-1")


_ALLOWED: dict[tuple[str, str], _Token] = {
    ("numpy.core.multiarray", "_reconstruct"): _Reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _Reconstruct(),
    ("numpy.core.numeric", "_frombuffer"): _Frombuffer(),
    ("numpy._core.numeric", "_frombuffer"): _Frombuffer(),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Dtype(),
    ("_codecs", "encode"): _Latin1Encode(),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose only reachable globals are the inert stand-ins in ``_ALLOWED``."""

    def __init__(self, raw: bytes, where: str) -> None:
        super().__init__(io.BytesIO(raw), encoding="bytes")
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        token = _ALLOWED.get((module, name))
        if token is None:
            raise UserError(
                f"{self._where}: refusing to load {module}.{name} from a pickle (only numpy arrays are "
                "allowed); this is not an original data file, fetch the official archive again"
            )
        return token


def _resolve(obj: Any, seen: set[int]) -> Any:
    """Replace stubs by real arrays / dtypes throughout dicts, lists and tuples."""
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise pickle.UnpicklingError("an array was never given its data")
        return obj.array
    if isinstance(obj, _DtypeStub):
        return obj.resolve()
    if isinstance(obj, (dict, list)):
        if id(obj) in seen:
            return obj
        seen.add(id(obj))
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for k, v in list(items):
            obj[k] = _resolve(v, seen)
        return obj
    if isinstance(obj, tuple):
        return tuple(_resolve(v, seen) for v in obj)
    return obj


def restricted_loads(raw: bytes, where: str) -> Any:
    """Load a pickle holding only plain data and numeric numpy arrays; anything else is a UserError.

    ``where`` names the file in error messages. Python 2 strings come back as ``bytes``.
    """
    try:
        return _resolve(_RestrictedUnpickler(raw, where).load(), set())
    except UserError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            OverflowError, MemoryError, RecursionError, UnicodeError, struct.error) as e:
        raise UserError(
            f"{where} is corrupt, truncated or not a plain-data pickle ({type(e).__name__}: {e}); "
            "delete it and fetch the original again"
        ) from None


# ---------------------------------------------------------------------------------------------- CIFAR


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR variant lives and what it contains."""

    name: str
    archive: str
    md5: str
    url: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]


_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR100_CLASSES = tuple(
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel "
    "can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur "
    "dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion "
    "lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree "
    "pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea "
    "seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table "
    "tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman "
    "worm".split()
)

CIFAR10 = CifarSpec(
    name="cifar10", archive="cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",), label_key="labels",
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), classes=_CIFAR10_CLASSES,
)
CIFAR100 = CifarSpec(
    name="cifar100", archive="cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", folder="cifar-100-python",
    train_files=("train",), test_files=("test",), label_key="fine_labels",
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), classes=_CIFAR100_CLASSES,
)


def _fix(spec: CifarSpec) -> str:
    return f"delete it and fetch {spec.archive} again from {spec.url}"


def _locate(spec: CifarSpec, root: Path) -> tuple[Path, bool]:
    """Return (path, is_archive) for an explicit root: the archive, the extracted folder, or their parent."""
    root = Path(root).expanduser()
    if root.is_file():
        return root, True
    if root.is_dir():
        if any((root / f).is_file() for f in spec.train_files + spec.test_files):
            return root, False
        if (root / spec.folder).is_dir():
            return root / spec.folder, False
        if (root / spec.archive).is_file():
            return root / spec.archive, True
        raise UserError(
            f"no {spec.name} data in {root}: expected {spec.archive} or the extracted folder {spec.folder}/; "
            f"point --data-root at one of them (download: {spec.url})"
        )
    raise UserError(f"{root} does not exist; pass --data-root pointing at {spec.archive} or {spec.folder}/")


def _read_folder(spec: CifarSpec, folder: Path) -> dict[str, bytes]:
    """Read the batch files present in an extracted folder; a split must be complete or absent."""
    out: dict[str, bytes] = {}
    for files in (spec.train_files, spec.test_files):
        present = [f for f in files if (folder / f).is_file()]
        if present and len(present) != len(files):
            missing = sorted(set(files) - set(present))
            raise UserError(f"{folder} lacks {', '.join(missing)}; extract the complete {spec.archive} there")
        for f in present:
            out[f] = (folder / f).read_bytes()
    return out


def _read_archive(spec: CifarSpec, path: Path) -> dict[str, bytes]:
    """Read the batch members straight from the (gzip) tar archive in one pass; nothing touches disk."""
    wanted = {f"{spec.folder}/{f}": f for f in spec.train_files + spec.test_files}
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                key = wanted.get(posixpath.normpath(member.name))
                if key is None or not member.isfile():
                    continue
                if member.size > _MAX_MEMBER_BYTES:
                    raise UserError(f"{path}: member {member.name} is implausibly large; {_fix(spec)}")
                fh = tar.extractfile(member)
                assert fh is not None
                out[key] = fh.read()
                if len(out[key]) != member.size:
                    raise EOFError(f"member {member.name} is cut short")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        why = " ".join(str(e).split())  # tarfile's messages span lines; the CLI prints one
        raise UserError(f"cannot read {path} as a tar archive ({type(e).__name__}: {why}); {_fix(spec)}") from None
    missing = sorted(set(wanted.values()) - set(out))
    if missing:
        raise UserError(f"{path} lacks {spec.folder}/{', '.join(missing)}; {_fix(spec)}")
    return out


def _get(d: dict, key: str) -> Any:
    """Look a key up as written by Python 2 (bytes under encoding="bytes") or Python 3 (str)."""
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


def parse_batch(raw: bytes, where: str, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one batch file into (uint8 images N x 3 x 32 x 32, int64 labels N), validated."""
    d = restricted_loads(raw, where)
    if not isinstance(d, dict):
        raise UserError(f"{where} does not hold a dict of arrays; it is not a CIFAR batch file, fetch it again")
    data, labels = _get(d, "data"), _get(d, label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise UserError(f"{where}: 'data' must be a uint8 array of shape N x 3072, got {got}; fetch the file again")
    if labels is None:
        raise UserError(f"{where} has no {label_key!r} entry; it is not a {num_classes}-class CIFAR batch, fetch it again")
    y = np.asarray(labels)
    n = data.shape[0]
    if n == 0 or y.shape != (n,) or y.dtype.kind not in "iu":
        raise UserError(f"{where}: expected {n} integer labels for {n} images, got {y.dtype} {y.shape}; fetch the file again")
    if y.min() < 0 or y.max() >= num_classes:
        raise UserError(
            f"{where}: labels span {y.min()}..{y.max()}, outside 0..{num_classes - 1}; "
            "the file is corrupt or belongs to another dataset, fetch it again"
        )
    return data.reshape(n, 3, 32, 32), y.astype(np.int64)


def load_cifar(spec: CifarSpec, root: Path | str | None = None) -> tuple[DataInfo, dict[str, Split]]:
    """Load the splits of ``spec`` from ``root`` (archive, folder, or its parent) or the standard places."""
    if root is None:
        from prunebench.data.sources import find_or_fetch  # lazy: sources may fetch over the network

        root = find_or_fetch(spec.name, {spec.archive: spec.md5}, {spec.archive: spec.url}) / spec.archive
    path, is_archive = _locate(spec, Path(root))
    raw = _read_archive(spec, path) if is_archive else _read_folder(spec, path)
    if not raw:
        raise UserError(f"no {spec.name} batch files in {path}; extract the complete {spec.archive} there")
    num_classes = len(spec.classes)
    splits: dict[str, Split] = {}
    for split, files in (("train", spec.train_files), ("test", spec.test_files)):
        if files[0] not in raw:
            continue
        parts = [parse_batch(raw.pop(f), f"{path}/{f}" if not is_archive else f"{path}:{f}", spec.label_key, num_classes)
                 for f in files]
        x = np.concatenate([p[0] for p in parts])  # always a fresh, writable copy
        y = np.concatenate([p[1] for p in parts])
        splits[split] = Split(torch.from_numpy(x), torch.from_numpy(y))
    info = DataInfo(
        name=spec.name, num_classes=num_classes, in_channels=3, image_size=(32, 32), mean=spec.mean,
        std=spec.std, crop_padding=4, hflip=True, classes=spec.classes,
    )
    return info, splits


@DATASETS.register("cifar10", channels=3, size=32, classes=10)
def cifar10(root: Path | None = None) -> tuple[DataInfo, dict[str, Split]]:
    """CIFAR-10 (Krizhevsky 2009): 50k train / 10k test 32x32 RGB images, 10 classes."""
    return load_cifar(CIFAR10, root)


@DATASETS.register("cifar100", channels=3, size=32, classes=100)
def cifar100(root: Path | None = None) -> tuple[DataInfo, dict[str, Split]]:
    """CIFAR-100 (Krizhevsky 2009): 50k train / 10k test 32x32 RGB images, 100 fine classes."""
    return load_cifar(CIFAR100, root)
