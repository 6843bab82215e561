"""Loading time of each data set: boltzkit.data.load_dataset against the floor of reading it.

For every data set and split, measured side by side in one process (files in the OS page cache):

- ``verified``: ``load_dataset(spec, split)`` with the in-process checksum cache cleared first,
  i.e. what the first load in a fresh process costs (read, gunzip, SHA-256 or SHA-1, parse,
  conversion to a float32 tensor);
- ``cached``: the same call again, the checksum already verified in this process;
- ``floor``: reading the file and gunzipping it (plus ``np.frombuffer`` for IDX), the work no
  loader can skip; for ``digits`` it is scikit-learn's own ``load_digits()``.

Each repeat runs the three in an order that rotates from repeat to repeat; the table gives the
median (and minimum) over repeats and the ratio of the medians to the floor. The very first load
of ``digits`` in a process also imports scikit-learn's dataset module: that one-off cost is
printed separately.

    BOLTZKIT_DATA=../shared/data python benchmarks/bench_data.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import time

import numpy as np

from boltzkit import data

CASES = [("digits", "train"), ("digits", "all"), ("mnist", "train"), ("mnist", "test"),
         ("binarized-mnist", "train"), ("binarized-mnist", "valid"),
         ("binarized-mnist", "test")]


def floor_fn(spec, split):
    root = data.data_dir()
    if spec == "digits":
        from sklearn.datasets import load_digits
        return load_digits
    if spec == "mnist":
        images, labels, _ = data.MNIST_FILES[split]

        def f():
            for name in (images, labels):
                raw = gzip.decompress((root / "mnist" / name).read_bytes())
                np.frombuffer(raw, dtype=np.uint8)
        return f
    path = root / "binarized_mnist" / f"binarized_mnist_{split}.amat.gz"
    return lambda: gzip.decompress(path.read_bytes())


def timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"data folder: {data.data_dir()}")
    t0 = time.perf_counter()
    data.load_dataset("digits", "test")
    print(f"first digits load in this process (imports sklearn.datasets): "
          f"{time.perf_counter() - t0:.3f} s")
    print(f"{'data set':<24} {'shape':>13} {'verified s':>16} {'cached s':>16} {'floor s':>16}"
          f" {'verified/floor':>15} {'cached/floor':>13}")
    for spec, split in CASES:
        def verified():
            data._VERIFIED.clear()
            return data.load_dataset(spec, split)

        def cached():
            return data.load_dataset(spec, split)

        variants = {"verified": verified, "cached": cached, "floor": floor_fn(spec, split)}
        cached()  # warm up (and fill the page cache)
        times = {k: [] for k in variants}
        names = list(variants)
        for r in range(args.repeats):
            order = names[r % 3:] + names[:r % 3]
            for k in order:
                times[k].append(timed(variants[k]))
        shape = tuple(data.load_dataset(spec, split).data.shape)
        med = {k: statistics.median(v) for k, v in times.items()}
        cell = {k: f"{med[k]:.3f} ({min(times[k]):.3f})" for k in times}
        print(f"{spec + '/' + split:<24} {str(shape):>13} {cell['verified']:>16} "
              f"{cell['cached']:>16} {cell['floor']:>16} {med['verified'] / med['floor']:>15.2f} "
              f"{med['cached'] / med['floor']:>13.2f}")


if __name__ == "__main__":
    main()
