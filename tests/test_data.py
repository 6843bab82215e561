"""Tests of boltzkit.data: IDX reader, loaders, checksums, downloads (never the network), transforms."""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import shutil
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from boltzkit import data
from boltzkit.data import (DataUnavailableError, Dataset, as_tensor, binarize, load_dataset,
                           read_idx, standardize, to_spin)

SHARED = Path(os.environ["BOLTZKIT_DATA"]) if os.environ.get("BOLTZKIT_DATA") else None


def shared_file(*parts) -> Path:
    if SHARED is None:
        pytest.skip("BOLTZKIT_DATA is not set")
    p = SHARED.joinpath(*parts)
    if not p.is_file():
        pytest.skip(f"{p} is missing")
    return p


# --- IDX ------------------------------------------------------------------------------------
def idx_bytes(arr: np.ndarray, code: int) -> bytes:
    dims = b"".join(struct.pack(">i", d) for d in arr.shape)
    return bytes([0, 0, code, arr.ndim]) + dims + arr.tobytes()


IDX_CASES = [
    (0x08, np.dtype("u1"), np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10),
    (0x09, np.dtype("i1"), np.array([-128, -1, 0, 127], dtype=np.int8)),
    (0x0B, np.dtype(">i2"), np.array([[-30000, 5], [7, 30000]], dtype=np.int16)),
    (0x0C, np.dtype(">i4"), np.array([-(2 ** 31), 0, 2 ** 31 - 1], dtype=np.int32)),
    (0x0D, np.dtype(">f4"), np.array([[1.5, -2.25, 1e30], [0.0, 3.0, -1e-20]], dtype=np.float32)),
    (0x0E, np.dtype(">f8"), np.array([np.pi, -np.e, 1e300], dtype=np.float64)),
]


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("code,dtype,arr", IDX_CASES)
def test_read_idx_round_trip(tmp_path, code, dtype, arr, gz):
    raw = idx_bytes(arr.astype(dtype), code)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    out = read_idx(path)
    assert out.shape == arr.shape
    assert out.dtype == dtype.newbyteorder("=")  # native byte order
    np.testing.assert_array_equal(out, arr)
    out[...] = 0  # writable
    with open(path, "rb") as f:  # file objects work too
        np.testing.assert_array_equal(read_idx(f), arr)
    np.testing.assert_array_equal(read_idx(io.BytesIO(path.read_bytes())), arr)


def test_read_idx_errors(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(arr, 0x08)
    cases = {
        "truncated.idx": (raw[:-1], "truncated"),
        "trailing.idx": (raw + b"\x00", "size mismatch"),
        "magic.idx": (b"\x01\x02" + raw[2:], "magic"),
        "code.idx": (raw[:2] + b"\x07" + raw[3:], "magic"),
        "zero_dims.idx": (raw[:3] + b"\x00" + raw[4:], "magic"),
        "short_header.idx": (raw[:9], "truncated"),
        "tiny.idx": (b"\x00\x00", "truncated"),
        "truncated.idx.gz": (gzip.compress(raw)[:-12], "gzip"),
        "truncated_data.idx.gz": (gzip.compress(raw[:-5]), "truncated"),
    }
    for name, (content, problem) in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(ValueError, match=problem) as err:
            read_idx(p)
        assert name in str(err.value)
    with pytest.raises(ValueError, match="does not exist"):
        read_idx(tmp_path / "missing.idx")


# --- digits, files, choices -----------------------------------------------------------------
def test_digits_splits():
    tr, te, al = (load_dataset("digits", s) for s in ("train", "test", "all"))
    assert tr.data.shape == (1438, 64) and te.data.shape == (359, 64) and al.data.shape == (1797, 64)
    for d in (tr, te, al):
        assert isinstance(d, Dataset)
        assert d.data.dtype == torch.float32 and d.labels.dtype == torch.int64
        assert d.image_shape == (8, 8)
        assert 0.0 <= d.data.min() and d.data.max() == 1.0
        assert set(d.labels.tolist()) == set(range(10))
    assert torch.equal(torch.cat([tr.data, te.data]), al.data)
    assert torch.equal(torch.cat([tr.labels, te.labels]), al.labels)
    # grey levels 0..16 scaled by 1/16
    assert torch.equal(al.data * 16, (al.data * 16).round())


def test_unknown_spec_and_split():
    with pytest.raises(ValueError, match="'digits', 'mnist', 'binarized-mnist'"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="'train', 'test', 'all'.*got 'valid'"):
        load_dataset("digits", "valid")
    with pytest.raises(ValueError, match="'train', 'test'.*got 'all'"):
        load_dataset("mnist", "all")
    with pytest.raises(ValueError, match="'train', 'valid', 'test'"):
        load_dataset("binarized-mnist", "training")


def test_npy_and_csv_round_trip(tmp_path):
    x = np.random.default_rng(0).random((7, 16))
    np.save(tmp_path / "x.npy", x)
    d = load_dataset(str(tmp_path / "x.npy"), split="ignored")
    assert d.data.dtype == torch.float32 and d.labels is None and d.image_shape == (4, 4)
    assert d.name == "x.npy"
    np.testing.assert_allclose(d.data.numpy(), x, rtol=1e-6)

    np.savetxt(tmp_path / "x.csv", x[:, :5], delimiter=",", header="a,b,c,d,e", comments="")
    d = load_dataset(tmp_path / "x.csv")
    assert d.data.shape == (7, 5) and d.image_shape is None
    np.testing.assert_allclose(d.data.numpy(), x[:, :5], rtol=1e-6)

    np.savetxt(tmp_path / "noheader.csv", x[:, :9], delimiter=",")  # no header
    d = load_dataset(str(tmp_path / "noheader.csv"))
    assert d.data.shape == (7, 9) and d.image_shape == (3, 3)
    np.save(tmp_path / "ints.npy", np.array([[0, 1], [1, 0]], dtype=np.int64))
    d = load_dataset(str(tmp_path / "ints.npy"))
    assert d.data.dtype == torch.float32 and d.image_shape is None
    (tmp_path / "col.csv").write_text("v\n1\n2\n3\n")
    assert load_dataset(str(tmp_path / "col.csv")).data.shape == (3, 1)


def test_file_errors(tmp_path):
    def bad(name, match):
        with pytest.raises(ValueError, match=match) as err:
            load_dataset(str(tmp_path / name))
        assert name in str(err.value)

    np.save(tmp_path / "one_d.npy", np.zeros(5))
    bad("one_d.npy", "2-D")
    np.save(tmp_path / "three_d.npy", np.zeros((2, 2, 2)))
    bad("three_d.npy", "2-D")
    np.save(tmp_path / "empty.npy", np.zeros((0, 4)))
    bad("empty.npy", "at least one sample")
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]]))
    bad("nan.npy", "NaN")
    np.save(tmp_path / "inf.npy", np.array([[0.0, np.inf]]))
    bad("inf.npy", "inf")
    np.save(tmp_path / "big.npy", np.array([[1e300]]))  # overflows float32
    bad("big.npy", "inf")
    np.save(tmp_path / "obj.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    bad("obj.npy", "pickle")
    (tmp_path / "garbage.npy").write_bytes(b"not a numpy file")
    bad("garbage.npy", "npy")
    (tmp_path / "empty.csv").write_text("")
    bad("empty.csv", "empty")
    (tmp_path / "header_only.csv").write_text("a,b\n")
    bad("header_only.csv", "no data rows")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    bad("ragged.csv", "numeric")
    (tmp_path / "text.csv").write_text("a,b\n1,x\n")
    bad("text.csv", "numeric")
    (tmp_path / "nan.csv").write_text("1,nan\n")
    bad("nan.csv", "NaN")
    bad("missing.npy", "does not exist")


def test_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BOLTZKIT_DATA", str(tmp_path / "d"))
    assert data.data_dir() == tmp_path / "d"
    monkeypatch.delenv("BOLTZKIT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_dir() == tmp_path / "xdg" / "boltzkit"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not absolute: ignored (XDG spec)
    assert data.data_dir() == Path.home() / ".cache" / "boltzkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.data_dir() == Path.home() / ".cache" / "boltzkit"


# --- MNIST ----------------------------------------------------------------------------------
def test_embedded_checksums_match_published_lists():
    sums = {"SHA256SUMS": data.MNIST_SHA256, "MD5SUMS": data.MNIST_MD5}
    for fname, table in sums.items():
        lines = shared_file("mnist", fname).read_text().split("\n")
        published = {ln.split()[1]: ln.split()[0] for ln in lines if ln.strip()}
        assert published == table
    for fname, table in (("SHA1SUMS.amat", data.BINARIZED_MNIST_SHA1),
                         ("MD5SUMS.amat", data.BINARIZED_MNIST_MD5)):
        lines = shared_file("binarized_mnist", fname).read_text().split("\n")
        published = {ln.split()[1]: ln.split()[0] for ln in lines if ln.strip()}
        assert published == {f"binarized_mnist_{s}.amat": v for s, v in table.items()}


@pytest.mark.parametrize("split,n", [("train", 60000), ("test", 10000)])
def test_mnist(split, n):
    images_name, labels_name, _ = data.MNIST_FILES[split]
    for name in (images_name, labels_name):
        p = shared_file("mnist", name)
        # independent check of the files against the published MD5 (the loader checks SHA-256)
        assert hashlib.md5(p.read_bytes()).hexdigest() == data.MNIST_MD5[name]
    d = load_dataset("mnist", split)
    assert d.data.shape == (n, 784) and d.data.dtype == torch.float32
    assert d.labels.shape == (n,) and d.labels.dtype == torch.int64
    assert d.image_shape == (28, 28) and d.name == f"mnist/{split}"
    assert d.data.min() == 0.0 and d.data.max() == 1.0
    grey = d.data[:1000] * 255  # grey levels 0..255 scaled by 1/255
    assert torch.equal(grey, grey.round())
    counts = torch.bincount(d.labels, minlength=10)
    assert counts.shape == (10,)  # labels 0..9 only
    assert counts.min() > n // 20  # every digit well represented (~n/10 each)
    for name in (images_name, labels_name):
        p = SHARED / "mnist" / name
        assert data._file_key(p, "sha256", data.MNIST_SHA256[name]) in data._VERIFIED
    # the IDX reader agrees with the loader
    raw = read_idx(SHARED / "mnist" / images_name)
    assert torch.equal(d.data[:5], torch.from_numpy(raw[:5].reshape(5, 784)).float() / 255)
    if split == "test":  # the well-known first test labels
        assert d.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def copy_split(tmp_path, split) -> Path:
    images_name, labels_name, _ = data.MNIST_FILES[split]
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in (images_name, labels_name):
        shutil.copyfile(shared_file("mnist", name), folder / name)
    return folder


def test_mnist_corrupted_copy_fails_checksum(tmp_path):
    folder = copy_split(tmp_path, "test")
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(labels.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    labels.write_bytes(bytes(raw))
    actual = hashlib.sha256(bytes(raw)).hexdigest()
    with pytest.raises(ValueError) as err:
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert str(labels) in msg and "SHA256" in msg
    assert data.MNIST_SHA256["t10k-labels-idx1-ubyte.gz"] in msg and actual in msg


def test_mnist_truncated_copy_fails_checksum(tmp_path):
    folder = copy_split(tmp_path, "test")
    images = folder / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:100000])
    with pytest.raises(ValueError, match="checksum"):
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)


# --- downloads (never the network) ----------------------------------------------------------
def no_network(monkeypatch):
    calls = []

    def fake(url, dest, timeout=None):
        calls.append(url)
        raise urllib.error.URLError("no network (test)")

    monkeypatch.setattr(data.loaders, "_download_to", fake)
    return calls


def test_no_network_mnist(tmp_path, monkeypatch):
    calls = no_network(monkeypatch)
    with pytest.raises(DataUnavailableError) as err:
        load_dataset("mnist", "train", data_dir=tmp_path)
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert name in msg
    assert str(tmp_path / "mnist") in msg and "BOLTZKIT_DATA" in msg and "no network" in msg
    assert calls and all(u.startswith(data.MNIST_MIRRORS) for u in calls)
    assert list((tmp_path / "mnist").iterdir()) == []  # no partial files left behind


def test_no_network_binarized(tmp_path, monkeypatch):
    no_network(monkeypatch)
    monkeypatch.setenv("BOLTZKIT_DATA", str(tmp_path))  # data_dir() default
    with pytest.raises(DataUnavailableError) as err:
        load_dataset("binarized-mnist", "valid")
    msg = str(err.value)
    assert "binarized_mnist_valid.amat" in msg and str(tmp_path / "binarized_mnist") in msg
    assert "BOLTZKIT_DATA" in msg
    assert list((tmp_path / "binarized_mnist").iterdir()) == []


def test_download_false_does_not_download(tmp_path, monkeypatch):
    calls = no_network(monkeypatch)
    with pytest.raises(DataUnavailableError, match="download=False"):
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    with pytest.raises(DataUnavailableError, match="download=False"):
        load_dataset("binarized-mnist", "test", data_dir=tmp_path, download=False)
    assert calls == []


def test_download_verified_then_renamed(tmp_path, monkeypatch):
    """A fake downloader serving the shared files: the file appears after verification."""
    src = {n: shared_file("mnist", n) for n in data.MNIST_FILES["test"][:2]}
    amat = gzip.decompress(shared_file("binarized_mnist", "binarized_mnist_test.amat.gz")
                           .read_bytes())

    def fake(url, dest, timeout=None):
        name = url.rsplit("/", 1)[1]
        if name.endswith(".amat"):
            Path(dest).write_bytes(amat)
        else:
            shutil.copyfile(src[name], dest)

    monkeypatch.setattr(data.loaders, "_download_to", fake)
    d = load_dataset("mnist", "test", data_dir=tmp_path)
    assert d.data.shape == (10000, 784)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(src)
    b = load_dataset("binarized-mnist", "test", data_dir=tmp_path)
    assert b.data.shape == (10000, 784)
    assert [p.name for p in (tmp_path / "binarized_mnist").iterdir()] == \
        ["binarized_mnist_test.amat"]  # stored as downloaded (uncompressed)


def test_download_with_wrong_content_is_discarded(tmp_path, monkeypatch):
    def fake(url, dest, timeout=None):
        Path(dest).write_bytes(b"<html>not the file</html>")

    monkeypatch.setattr(data.loaders, "_download_to", fake)
    with pytest.raises(DataUnavailableError, match="checksum"):
        load_dataset("mnist", "test", data_dir=tmp_path)
    with pytest.raises(DataUnavailableError, match="checksum"):
        load_dataset("binarized-mnist", "test", data_dir=tmp_path)
    assert list((tmp_path / "mnist").iterdir()) == []
    assert list((tmp_path / "binarized_mnist").iterdir()) == []


# --- binarized MNIST ------------------------------------------------------------------------
@pytest.mark.parametrize("split,n", [("train", 50000), ("valid", 10000), ("test", 10000)])
def test_binarized_mnist(split, n):
    shared_file("binarized_mnist", f"binarized_mnist_{split}.amat.gz")
    d = load_dataset("binarized-mnist", split)
    assert d.data.shape == (n, 784) and d.data.dtype == torch.float32
    assert d.labels is None and d.image_shape == (28, 28) and d.name == f"binarized-mnist/{split}"
    assert ((d.data == 0) | (d.data == 1)).all() and d.data.max() == 1
    # about 13 % of the pixels are on in binarized MNIST
    assert 0.10 < d.data.mean().item() < 0.16


def test_binarized_mnist_uncompressed_and_corrupted(tmp_path):
    gz = shared_file("binarized_mnist", "binarized_mnist_test.amat.gz")
    content = gzip.decompress(gz.read_bytes())
    folder = tmp_path / "binarized_mnist"
    folder.mkdir()
    # an uncompressed .amat (as downloaded) gives the same data as the .amat.gz
    (folder / "binarized_mnist_test.amat").write_bytes(content)
    a = load_dataset("binarized-mnist", "test", data_dir=tmp_path)
    b = load_dataset("binarized-mnist", "test")
    assert torch.equal(a.data, b.data)
    # a re-compressed file (different gzip bytes, same content) verifies too
    (folder / "binarized_mnist_test.amat").unlink()
    (folder / "binarized_mnist_test.amat.gz").write_bytes(gzip.compress(content, compresslevel=1))
    assert torch.equal(load_dataset("binarized-mnist", "test", data_dir=tmp_path).data, b.data)
    # one flipped pixel: checksum error naming the file, expected and actual SHA-1
    bad = bytearray(content)
    bad[0] = ord("1")
    (folder / "binarized_mnist_test.amat.gz").unlink()
    path = folder / "binarized_mnist_test.amat"
    path.write_bytes(bytes(bad))
    with pytest.raises(ValueError) as err:
        load_dataset("binarized-mnist", "test", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert str(path) in msg and "SHA1" in msg
    assert data.BINARIZED_MNIST_SHA1["test"] in msg
    assert hashlib.sha1(bytes(bad)).hexdigest() in msg


def test_parse_amat_layout():
    rows = np.random.default_rng(1).integers(0, 2, size=(3, 784))
    text = "".join(" ".join(str(v) for v in r) + "\n" for r in rows).encode()
    np.testing.assert_array_equal(data._parse_amat(text, 3, "t"), rows)
    with pytest.raises(ValueError, match="expected 2 rows"):
        data._parse_amat(text, 2, "t")
    with pytest.raises(ValueError, match="space-separated"):
        data._parse_amat(text.replace(b"0 ", b"2 ", 1), 3, "t")


# --- transforms -----------------------------------------------------------------------------
def test_binarize_threshold():
    x = torch.tensor([[0.0, 0.49, 0.5, 0.51, 1.0]])
    assert binarize(x, "threshold").tolist() == [[0, 0, 0, 1, 1]]
    assert binarize(x, threshold=0.2).tolist() == [[0, 1, 1, 1, 1]]
    assert binarize(np.array([[2.0, -1.0]])).dtype == torch.float32
    with pytest.raises(ValueError, match="method"):
        binarize(x, "round")
    with pytest.raises(ValueError, match="finite"):
        binarize(torch.tensor([[float("nan")]]))


def test_binarize_sample_mean():
    p = torch.tensor([0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
    n = 40000
    x = p.expand(n, -1)
    s = binarize(x, "sample", generator=torch.Generator().manual_seed(0))
    assert s.shape == x.shape and s.dtype == torch.float32
    assert set(torch.unique(s).tolist()) <= {0.0, 1.0}
    # each column's mean is an average of n Bernoulli(p) draws: std sqrt(p(1-p)/n) <= 0.5/sqrt(n);
    # a 5-sigma bound (0.0125 for n = 40000) fails by chance with probability < 1e-5 per column
    bound = 5 * 0.5 / math.sqrt(n)
    assert (s.mean(dim=0) - p).abs().max() < bound
    assert s[:, 0].sum() == 0 and s[:, -1].sum() == n  # p = 0 and p = 1 are exact
    # equal generators give equal draws; different seeds differ
    again = binarize(x, "sample", generator=torch.Generator().manual_seed(0))
    other = binarize(x, "sample", generator=torch.Generator().manual_seed(1))
    assert torch.equal(s, again) and not torch.equal(s, other)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(torch.tensor([[0.5, 1.5]]), "sample")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(torch.tensor([[-0.1]]), "sample")


def test_standardize():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 4, generator=g) * torch.tensor([1.0, 3.0, 0.1, 0.0]) + 5.0
    z, mean, std = standardize(x)
    assert z.shape == x.shape and mean.shape == (4,) and std.shape == (4,)
    torch.testing.assert_close(z.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(z[:, :3].std(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    assert std[3] == 1e-6 and torch.equal(z[:, 3], torch.zeros(500))  # constant pixel: floor
    z2, m2, s2 = standardize(x[:10], mean, std)  # the training statistics reused
    assert torch.equal(m2, mean) and torch.equal(s2, std)
    torch.testing.assert_close(z2, z[:10])
    with pytest.raises(ValueError, match=r"mean: expected shape \(4,\)"):
        standardize(x, mean=torch.zeros(3))
    with pytest.raises(ValueError, match="std: expected positive"):
        standardize(x, std=torch.zeros(4))
    with pytest.raises(ValueError, match="2-D"):
        standardize(torch.zeros(5))


def test_to_spin():
    assert to_spin(torch.tensor([[0.0, 1.0, 1.0]])).tolist() == [[-1, 1, 1]]
    assert to_spin(np.array([[1, 0]])).dtype == torch.float32
    with pytest.raises(ValueError, match="0/1"):
        to_spin(torch.tensor([[0.0, 0.5]]))
    with pytest.raises(ValueError, match="0/1"):
        to_spin(torch.tensor([[-1.0, 1.0]]))


def test_as_tensor():
    t = as_tensor([[1, 2], [3, 4]])
    assert t.dtype == torch.float32 and t.tolist() == [[1, 2], [3, 4]]
    assert as_tensor(np.ones((2, 3), dtype=np.float64)).dtype == torch.float32
    assert as_tensor(np.array([[True, False]])).tolist() == [[1.0, 0.0]]
    src = torch.ones(2, 2)
    assert as_tensor(src) is not None and as_tensor(src).dtype == torch.float32
    with pytest.raises(ValueError, match=r"X: expected a 2-D .* 1-D"):
        as_tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="data: expected at least one sample"):
        as_tensor(np.zeros((0, 3)), name="data")
    with pytest.raises(ValueError, match="at least one sample and one feature"):
        as_tensor(np.zeros((3, 0)))
    with pytest.raises(ValueError, match="NaN"):
        as_tensor([[0.0, float("nan")]])
    with pytest.raises(ValueError, match="inf"):
        as_tensor(torch.tensor([[float("inf")]]))
    with pytest.raises(ValueError, match="numbers"):
        as_tensor([["a", "b"]])
    with pytest.raises(ValueError, match="X:"):
        as_tensor([[1.0, 2.0], [3.0]])  # ragged
    with pytest.raises(ValueError, match="real numbers"):
        as_tensor(torch.ones(2, 2, dtype=torch.complex64))
