"""Data sets: IDX reader, MNIST, binarized MNIST, scikit-learn's 8x8 digits, user arrays
(``.npy`` / ``.csv``), checksums and downloads.

Every loader returns a :class:`Dataset` whose ``data`` is a ``torch.float32`` tensor of shape
``(n_samples, n_features)``. Values are never binarised silently: MNIST comes as grey levels in
[0, 1] and :func:`binarize` is an explicit step (``"threshold"`` or ``"sample"``, see
:mod:`boltzkit.data.transforms` and :class:`boltzkit.data.Preparation`); the standard fixed
binarisation of MNIST is a data set of its own (``"binarized-mnist"``).

Data sets (``spec`` of :func:`load_dataset`)
--------------------------------------------
``"digits"``
    scikit-learn's 8x8 handwritten digits (1797 images, embedded in scikit-learn, no files), grey
    levels 0..16 scaled to [0, 1], labels 0..9. Deterministic split by row order:
    ``"train"`` = the first 1438 rows (80 %), ``"test"`` = the remaining 359, ``"all"`` = all 1797.
``"mnist"``
    The four original gzipped IDX files in ``<data_dir>/mnist/``; ``"train"`` 60000 and ``"test"``
    10000 images of 28x28 grey levels scaled to [0, 1], labels 0..9.
``"binarized-mnist"``
    The fixed binarisation of Salakhutdinov & Murray (2008) as distributed by Larochelle & Murray
    (2011), ``<data_dir>/binarized_mnist/binarized_mnist_{split}.amat`` (as downloaded) or
    ``.amat.gz``; ``"train"`` 50000, ``"valid"`` 10000, ``"test"`` 10000 rows of 784 0/1 values,
    no labels.
``"patches"``, ``"patches-14"``
    Natural image patches, 8x8 or 14x14 grey levels in [0, 1], cut at fixed random positions
    (NumPy ``default_rng`` seeded per split) from the two photographs that ship with
    scikit-learn (``sklearn.datasets.load_sample_images``: china.jpg and flower.jpg, 427x640,
    RGB averaged to grey; no download). ``"train"``: 20000 patches from the left three quarters
    of both images (columns 0-479), ``"test"``: 5000 from the right quarter (columns 480-639),
    so no test patch overlaps a training patch. No labels. Gaussian units standardise them,
    or whiten them (:meth:`boltzkit.data.Preparation.fit` with ``whiten=True``).
a path ending in ``.npy`` or ``.csv``
    A user's 2-D numeric array (rows are samples); ``split`` is ignored. A ``.csv`` is comma
    separated; a first line that is not numeric is taken as a header and skipped.

The data folder is :func:`data_dir`: ``$BOLTZKIT_DATA`` if set, else ``$XDG_CACHE_HOME/boltzkit``
(``~/.cache/boltzkit``). A missing MNIST or binarized MNIST file is downloaded from its public
home into that folder (``download=True``), written to a temporary file and renamed only after its
checksum matched. Without a network, a :class:`DataUnavailableError` says which file to put where.

Checksums
---------
Every MNIST or binarized MNIST file read is verified against the published checksums embedded
below: the SHA-256 of the MNIST ``.gz`` files, and the SHA-1 of the *uncompressed* ``.amat``
content for binarized MNIST (so a ``.amat`` as downloaded and a ``.amat.gz`` made by any gzip
both verify). A verified file is remembered in-process by (path, size, mtime), so loading it
again does not hash it again. A mismatch raises ``ValueError`` naming the file, the expected and
the actual checksum.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import math
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import IO, NamedTuple, Optional, Union

import numpy as np
import torch

from .transforms import as_tensor

__all__ = [
    "Dataset",
    "DataUnavailableError",
    "DATASETS",
    "read_idx",
    "load_dataset",
    "data_dir",
]

logger = logging.getLogger(__name__)

DATASETS = ("digits", "mnist", "binarized-mnist", "patches", "patches-14")

SPLITS = {
    "digits": ("train", "test", "all"),
    "mnist": ("train", "test"),
    "binarized-mnist": ("train", "valid", "test"),
    "patches": ("train", "test"),
    "patches-14": ("train", "test"),
}

# natural image patches: (rows per split, seed per split, column range of the top-left corners)
PATCH_SPLITS = {"train": (20000, 0, (0, 480)), "test": (5000, 1, (480, 640))}

# scikit-learn digits: first 1438 rows (round(0.8 * 1797)) train, the remaining 359 test.
DIGITS_N_TRAIN = 1438

# --- published checksums --------------------------------------------------------------------
# MNIST (yann.lecun.com originals, as mirrored): SHA-256 and MD5 of the gzipped IDX files.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# Binarized MNIST (Larochelle's distribution): SHA-1 and MD5 of the uncompressed .amat files.
BINARIZED_MNIST_SHA1 = {
    "train": "cf70514ec5f481e54ad3eb0e6c03c83326ff96f8",
    "valid": "13418487742e6ea6d48db7b5187353a20b1b1f8c",
    "test": "ca70bd7775e182596dec148d4dc1bc6bd6c4c5f4",
}
BINARIZED_MNIST_MD5 = {
    "train": "db28b1a6ae0fe70cbd3da91acf46e477",
    "valid": "bf37822a04e94123630de6a7dfd9c9ef",
    "test": "14e41ae11040adba6ab8cb291eda0dd8",
}
BINARIZED_MNIST_ROWS = {"train": 50000, "valid": 10000, "test": 10000}
BINARIZED_MNIST_URL = ("http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
                       "binarized_mnist_{split}.amat")

DOWNLOAD_TIMEOUT_S = 60.0


class DataUnavailableError(ValueError):
    """A data file is missing and could not be downloaded (no network, download refused, or the
    folder is not writable). The message says which files to put into which folder."""


class Dataset(NamedTuple):
    """A loaded data set.

    Attributes
    ----------
    data : torch.Tensor, float32, ``(n_samples, n_features)``
    labels : torch.Tensor, int64, ``(n_samples,)``, or None when the data set has none
    image_shape : tuple ``(height, width)`` with ``height * width == n_features``, or None
    name : str, e.g. ``"mnist/train"`` or the file's name
    """

    data: torch.Tensor
    labels: Optional[torch.Tensor]
    image_shape: Optional[tuple]
    name: str


# --- data folder ----------------------------------------------------------------------------
def data_dir() -> Path:
    """The data folder: ``$BOLTZKIT_DATA`` if set (and not empty), else the user cache folder
    ``$XDG_CACHE_HOME/boltzkit`` (``~/.cache/boltzkit`` when XDG_CACHE_HOME is unset or not an
    absolute path, as the XDG specification asks)."""
    env = os.environ.get("BOLTZKIT_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "boltzkit"


_default_data_dir = data_dir  # load_dataset's keyword `data_dir` shadows the function


# --- checksums ------------------------------------------------------------------------------
# (resolved path, size, mtime_ns, algorithm, expected digest) of files already verified
_VERIFIED: set = set()


def _file_key(path: Path, algorithm: str, expected: str) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, algorithm, expected)


def _check_digest(content: bytes, algorithm: str, expected: str, path: Path,
                  what: str = "") -> None:
    """Raise ValueError naming ``path``, the expected and the actual digest on a mismatch."""
    actual = hashlib.new(algorithm, content).hexdigest()
    if actual != expected:
        raise ValueError(f"data file: {path}{what} fails its {algorithm.upper()} checksum: "
                         f"expected {expected}, got {actual} (corrupt or incomplete file; "
                         f"delete it to download it again)")


def _verified_read(path: Path, algorithm: str, expected: str) -> bytes:
    """Read ``path`` and check its digest (skipped when this process already verified the file
    with the same size and mtime)."""
    key = _file_key(path, algorithm, expected)
    content = path.read_bytes()
    if key not in _VERIFIED:
        _check_digest(content, algorithm, expected, path)
        _VERIFIED.add(key)
    return content


# --- IDX ------------------------------------------------------------------------------------
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _gunzip(raw: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:  # BadGzipFile is an OSError
        raise ValueError(f"data file: {name} is a corrupt or truncated gzip file ({err})") from None


def _parse_idx(raw: bytes, name: str) -> np.ndarray:
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, name)
    if len(raw) < 4:
        raise ValueError(f"IDX file: {name} is truncated: {len(raw)} bytes, shorter than the "
                         f"4-byte magic number")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ValueError(f"IDX file: {name} has a wrong magic number {raw[:4].hex()}: expected "
                         f"00 00, a type code in "
                         f"{{{', '.join(f'{c:02x}' for c in _IDX_DTYPES)}}} and >= 1 dimensions")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file: {name} is truncated: its header needs {header} bytes for "
                         f"{ndim} dimensions, the file has {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if any(d < 0 for d in dims):
        raise ValueError(f"IDX file: {name} has negative dimensions {dims}")
    expected = math.prod(dims) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise ValueError(f"IDX file: {name} is truncated: dimensions {dims} of {dtype.name} need "
                         f"{expected} bytes of data, found {found}")
    if found > expected:
        raise ValueError(f"IDX file: {name} has a size mismatch: dimensions {dims} of "
                         f"{dtype.name} need {expected} bytes of data, found {found} "
                         f"({found - expected} trailing bytes)")
    arr = np.frombuffer(raw, dtype=dtype, count=math.prod(dims), offset=header)
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def read_idx(path_or_fileobj: Union[str, os.PathLike, IO[bytes]]) -> np.ndarray:
    """Read an IDX file (the format of the MNIST files), gzipped or not.

    Gzip is detected by its magic bytes ``1f 8b``. The header is big-endian: two zero bytes, a
    type code (``08`` ubyte, ``09`` byte, ``0B`` int16, ``0C`` int32, ``0D`` float32, ``0E``
    float64), the number of dimensions, then each dimension as an int32; the data follow.

    Parameters
    ----------
    path_or_fileobj : path or binary file object

    Returns
    -------
    numpy.ndarray of the file's dimensions and type (native byte order, writable).

    Raises
    ------
    ValueError
        naming the file, for a wrong magic number, truncated data, trailing bytes, or a corrupt
        gzip stream.
    """
    if hasattr(path_or_fileobj, "read"):
        name = str(getattr(path_or_fileobj, "name", "<file object>"))
        raw = path_or_fileobj.read()
    else:
        path = Path(path_or_fileobj)
        name = str(path)
        if not path.is_file():
            raise ValueError(f"IDX file: {path} does not exist")
        raw = path.read_bytes()
    if not isinstance(raw, (bytes, bytearray)):
        raise ValueError(f"IDX file: {name} must be opened in binary mode")
    return _parse_idx(bytes(raw), name)


# --- downloads ------------------------------------------------------------------------------
def _download_to(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Copy the resource at ``url`` into the file ``dest`` (tests replace this function)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
        shutil.copyfileobj(resp, out, length=1 << 20)


def _fetch(urls, dest: Path, verify) -> None:
    """Download ``dest`` from the first of ``urls`` that works; the bytes go to a temporary file
    in ``dest``'s folder, ``verify(tmp_path)`` checks them (raising ValueError), then the file is
    renamed to ``dest``. Raises OSError-like errors collected as one message on failure."""
    errors = []
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _DownloadFailed(f"cannot create {dest.parent} ({err})") from None
    for url in urls:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        except OSError as err:
            raise _DownloadFailed(f"cannot write into {dest.parent} ({err})") from None
        os.close(fd)
        tmp = Path(tmp)
        try:
            logger.info("downloading %s to %s", url, dest)
            _download_to(url, tmp)
            verify(tmp)
            os.replace(tmp, dest)
            return
        except (OSError, http.client.HTTPException, ValueError) as err:
            # URLError, HTTPError and timeouts are OSErrors; ValueError is a checksum mismatch
            errors.append(f"{url}: {err}")
        finally:
            tmp.unlink(missing_ok=True)
    raise _DownloadFailed("; ".join(errors))


class _DownloadFailed(Exception):
    pass


def _unavailable(dataset: str, folder: Path, names, reason: str) -> DataUnavailableError:
    return DataUnavailableError(
        f"{dataset}: missing data file(s) {', '.join(names)} in {folder} ({reason}). Put "
        f"{'them' if len(names) > 1 else 'it'} into {folder}/ by hand, or set BOLTZKIT_DATA to "
        f"a folder holding {folder.name}/")


# --- MNIST ----------------------------------------------------------------------------------
def _verify_mnist_file(name: str):
    def verify(path: Path) -> None:
        _check_digest(path.read_bytes(), "sha256", MNIST_SHA256[name], path)
    return verify


def _load_mnist(split: str, root: Path, download: bool) -> Dataset:
    folder = root / "mnist"
    images_name, labels_name, n = MNIST_FILES[split]
    missing = [f for f in (images_name, labels_name) if not (folder / f).is_file()]
    if missing:
        if not download:
            raise _unavailable("mnist", folder, missing, "download=False")
        for name in missing:
            try:
                _fetch([m + name for m in MNIST_MIRRORS], folder / name, _verify_mnist_file(name))
            except _DownloadFailed as err:
                still = [f for f in missing if not (folder / f).is_file()]
                raise _unavailable("mnist", folder, still,
                                   f"download failed: {err}") from None
    raw_images = _verified_read(folder / images_name, "sha256", MNIST_SHA256[images_name])
    raw_labels = _verified_read(folder / labels_name, "sha256", MNIST_SHA256[labels_name])
    images = _parse_idx(raw_images, str(folder / images_name))
    labels = _parse_idx(raw_labels, str(folder / labels_name))
    if images.shape != (n, 28, 28) or images.dtype != np.uint8:
        raise ValueError(f"data file: {folder / images_name}: expected ubyte images of shape "
                         f"{(n, 28, 28)}, got {images.dtype.name} {images.shape}")
    if labels.shape != (n,) or labels.dtype != np.uint8 or labels.max() > 9:
        raise ValueError(f"data file: {folder / labels_name}: expected {n} ubyte labels 0..9, "
                         f"got {labels.dtype.name} {labels.shape}")
    data = torch.from_numpy(images.reshape(n, 784)).to(torch.float32).div_(255.0)
    return Dataset(data, torch.from_numpy(labels).to(torch.int64), (28, 28), f"mnist/{split}")


# --- binarized MNIST ------------------------------------------------------------------------
_AMAT_ROW = 784 * 2  # "0 0 ... 0\n": a digit and a separator per value


def _parse_amat(content: bytes, n_rows: int, name: str) -> np.ndarray:
    """Parse the fixed-layout binarized MNIST text (784 values '0'/'1' separated by single
    spaces, one row per line) with numpy on the raw bytes: (n_rows, 784) uint8.

    Each value and the separator after it form one little-endian 16-bit word: 0x2030 / 0x2031
    ("0 " / "1 "), and 0x0A30 / 0x0A31 at the end of a row; the value is the word's lowest bit.
    """
    if len(content) != n_rows * _AMAT_ROW:
        raise ValueError(f"data file: {name}: expected {n_rows} rows of 784 space-separated 0/1 "
                         f"values ({n_rows * _AMAT_ROW} bytes), got {len(content)} bytes")
    words = np.frombuffer(content, dtype="<u2").reshape(n_rows, 784)
    if not (((words[:, :-1] | 1) == 0x2031).all() and ((words[:, -1] | 1) == 0x0A31).all()):
        raise ValueError(f"data file: {name}: expected rows of 784 space-separated 0/1 values")
    return (words & 1).astype(np.uint8)


def _load_binarized_mnist(split: str, root: Path, download: bool) -> Dataset:
    folder = root / "binarized_mnist"
    stem = f"binarized_mnist_{split}.amat"
    expected = BINARIZED_MNIST_SHA1[split]
    candidates = [folder / stem, folder / (stem + ".gz")]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        if not download:
            raise _unavailable("binarized-mnist", folder, [stem], "download=False")

        def verify(tmp: Path) -> None:
            _check_digest(tmp.read_bytes(), "sha1", expected, tmp)

        try:
            _fetch([BINARIZED_MNIST_URL.format(split=split)], folder / stem, verify)
        except _DownloadFailed as err:
            raise _unavailable("binarized-mnist", folder, [stem + " (or " + stem + ".gz)"],
                               f"download failed: {err}") from None
        path = folder / stem
    key = _file_key(path, "sha1", expected)
    raw = path.read_bytes()
    content = _gunzip(raw, str(path)) if raw[:2] == b"\x1f\x8b" else raw
    if key not in _VERIFIED:
        _check_digest(content, "sha1", expected, path,
                      " (uncompressed content)" if content is not raw else "")
        _VERIFIED.add(key)
    x = _parse_amat(content, BINARIZED_MNIST_ROWS[split], str(path))
    return Dataset(torch.from_numpy(x).to(torch.float32), None, (28, 28),
                   f"binarized-mnist/{split}")


# --- digits ---------------------------------------------------------------------------------
def _load_digits(split: str) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    sl = {"train": slice(0, DIGITS_N_TRAIN), "test": slice(DIGITS_N_TRAIN, None),
          "all": slice(None)}[split]
    return Dataset(x[sl].contiguous(), y[sl].contiguous(), (8, 8), f"digits/{split}")


# --- user files -----------------------------------------------------------------------------
def _square_shape(n_features: int) -> Optional[tuple]:
    s = math.isqrt(n_features)
    return (s, s) if s >= 2 and s * s == n_features else None


def _is_header(line: str) -> bool:
    """A first line is a header when one of its fields is text (not a number and not empty): a
    row with an empty field is a data row with a missing value, reported, never dropped."""
    for field in line.split(","):
        field = field.strip()
        if field:
            try:
                float(field)
            except ValueError:
                return True
    return False


def _read_csv(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # numbers are ASCII in every encoding; a header in Latin-1 (or any 8-bit code page)
        # decodes as some text and is skipped all the same
        text = raw.decode("latin-1")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"data file: {path} is empty")
    if _is_header(lines[0]):
        lines = lines[1:]
    if not lines:
        raise ValueError(f"data file: {path} holds a header and no data rows")
    try:
        return np.loadtxt(lines, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise ValueError(f"data file: {path} is not a numeric comma-separated table ({err})") \
            from None


def _read_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"PK"):
        raise ValueError(f"data file: {path} is a .npz (zip) archive, not a .npy array; save "
                         f"one array with numpy.save")
    if magic != b"\x93NUMPY":
        raise ValueError(f"data file: {path} is not a .npy file (it does not start with "
                         f"NumPy's header)")
    # the header says what the array is: check it against the file before allocating
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as err:
        raise ValueError(f"data file: {path} has a corrupt .npy header ({err})") from None
    if dtype.hasobject:
        raise ValueError(f"data file: {path} holds Python objects (an object array), which "
                         f"boltzkit never unpickles; save a numeric array")
    need = math.prod(shape) * dtype.itemsize
    have = path.stat().st_size - offset
    if need > have:
        raise ValueError(f"data file: {path} is truncated: its header says {shape} of {dtype} "
                         f"({need} bytes), the file holds {have} bytes of data")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise ValueError(f"data file: {path} holds Python objects (an object array), "
                             f"which boltzkit never unpickles; save a numeric array") from None
        raise ValueError(f"data file: {path} is not a readable .npy array ({err})") from None
    except (OSError, EOFError) as err:
        raise ValueError(f"data file: {path} is truncated or unreadable ({err})") from None
    if not arr.dtype.isnative:  # big-endian (or little-endian elsewhere): the machine's order
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _load_file(spec: str) -> Dataset:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ValueError(f"data file: {path} is a folder, expected a file" if path.is_dir()
                         else f"data file: {path} does not exist")
    arr = _read_npy(path) if path.suffix.lower() == ".npy" else _read_csv(path)
    if arr.ndim != 2:
        raise ValueError(f"data file: {path}: expected a 2-D array (n_samples, n_features), got "
                         f"{arr.ndim}-D shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"data file: {path}: expected numbers, got dtype {arr.dtype}")
    data = as_tensor(arr, name=f"data file {path}")
    return Dataset(data, None, _square_shape(data.shape[1]), path.name)


# --- natural image patches ------------------------------------------------------------------
def _load_patches(size: int, split: str) -> Dataset:
    from sklearn.datasets import load_sample_images

    n, seed, (c0, c1) = PATCH_SPLITS[split]
    images = [np.asarray(im, dtype=np.float64).mean(-1) / 255.0
              for im in load_sample_images().images]
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(images), n)
    out = np.empty((n, size * size), dtype=np.float32)
    for k, i in enumerate(which):
        im = images[i]
        r = rng.integers(0, im.shape[0] - size + 1)
        c = rng.integers(c0, min(c1, im.shape[1]) - size + 1)
        out[k] = im[r:r + size, c:c + size].reshape(-1)
    name = "patches" if size == 8 else f"patches-{size}"
    return Dataset(torch.from_numpy(out), None, (size, size), f"{name}/{split}")


# --- entry point ----------------------------------------------------------------------------
def load_dataset(spec: str, split: str = "train", *, data_dir=None,
                 download: bool = True) -> Dataset:
    """Load a data set by name or file (see the module docstring for the list).

    Parameters
    ----------
    spec : str
        ``"digits"``, ``"mnist"``, ``"binarized-mnist"``, ``"patches"``, ``"patches-14"``, or a
        path ending in ``.npy`` / ``.csv``.
    split : str
        ``digits``: ``"train"`` (first 1438 rows), ``"test"`` (last 359), ``"all"`` (1797);
        ``mnist``: ``"train"`` (60000), ``"test"`` (10000); ``binarized-mnist``: ``"train"``
        (50000), ``"valid"`` (10000), ``"test"`` (10000). Ignored for files.
    data_dir : path, optional
        Folder holding ``mnist/`` and ``binarized_mnist/``; default :func:`data_dir`.
    download : bool
        Download missing MNIST / binarized MNIST files into the data folder (verified).

    Returns
    -------
    Dataset
        ``data`` float32 ``(n_samples, n_features)``; ``labels`` int64 ``(n_samples,)`` or None;
        ``image_shape`` ``(h, w)`` or None (files: ``(s, s)`` when n_features = s² with s >= 2).

    Raises
    ------
    ValueError
        unknown ``spec`` or ``split`` (listing the choices); a corrupt, truncated or empty file;
        NaN/inf; a non-2-D array; a checksum mismatch (naming file, expected and actual).
    DataUnavailableError (a ValueError)
        a missing file that could not be downloaded.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise ValueError(f"dataset: expected a name or a file path, got {type(spec).__name__}")
    spec = os.fspath(spec)
    if spec.lower().endswith((".npy", ".csv")):
        return _load_file(spec)
    if spec not in DATASETS:
        raise ValueError(f"dataset: expected one of {', '.join(repr(d) for d in DATASETS)} or a "
                         f"path ending in .npy or .csv, got {spec!r}")
    if split not in SPLITS[spec]:
        raise ValueError(f"split: expected one of {', '.join(repr(s) for s in SPLITS[spec])} for "
                         f"{spec!r}, got {split!r}")
    if spec == "digits":
        return _load_digits(split)
    if spec in ("patches", "patches-14"):
        return _load_patches(8 if spec == "patches" else 14, split)
    root = Path(data_dir).expanduser() if data_dir is not None else _default_data_dir()
    if spec == "mnist":
        return _load_mnist(split, root, download)
    return _load_binarized_mnist(split, root, download)
