"""The data-preparation record: how raw data become a model's visible states, and back.

A :class:`Preparation` is a small frozen record, learned once from the training data and stored
in the model file, so that training, evaluation, sampling and pictures all map data the same way:

>>> prep = Preparation.fit(x_train, "spin", binarize="threshold")    # learns, draws nothing
>>> v = prep.transform(x_train)                  # (n, n_features) on the units' support
>>> v_test = prep.transform(x_test, for_likelihood=True)             # must be on the support
>>> pictures = prep.inverse(v_model)             # back to data space, e.g. [0, 1]
>>> Preparation.from_dict(prep.to_dict()) == prep
True

The rules, per visible unit family (``units``):

``bernoulli``
    Data must lie in [0, 1]. 0/1 data are left alone; grey values are binarised with
    ``binarize="threshold"`` (1 where ``x > threshold``) or ``"sample"`` (Bernoulli draws with
    probability ``x``, randomness only from the ``generator``), or kept as probabilities with
    ``"none"``. ``inverse`` is the identity (means are probabilities).
``spin``
    Data holding a negative value are read as spin values in [-1, 1] (±1 spins, or means); other
    data as values in [0, 1] (0/1 or grey). Either way the values are binarised as for bernoulli
    units (spin means ``m`` through the probability ``(1 + m) / 2``; ±1 and 0/1 data are left
    alone) and end as ±1 (``2x - 1`` for [0, 1] data). :meth:`Preparation.fit` records which of
    the two the training data were (``spin_data``), and ``inverse`` returns there: ``(v + 1) / 2``
    for [0, 1] data, the identity for ±1 data.
``gaussian``
    Standardised per feature with the training mean and std (``(x - mean) / std``, std floored
    at 1e-6); ``inverse`` is ``v * std + mean``. A record without ``mean``/``std`` passes the data
    through unchanged. With ``whiten=True`` (:meth:`Preparation.fit`) the data are ZCA-whitened
    instead: ``v = (x - mean) Z`` with ``Z = U diag(1/sqrt(λ + ε)) Uᵀ`` from the eigenvectors
    ``U`` and eigenvalues ``λ`` of the training covariance, ``ε = whiten_epsilon · mean(λ)``
    (default 0.01: it keeps the least varying directions, which in image patches are mostly
    noise and compression artefacts, from being blown up); the record stores ``Z``
    (``zca``, row-major ``n_features²`` numbers, std 1) and ``inverse`` is ``v Z⁻¹ + mean``,
    so samples map back to pixels. The per-feature mean is removed, not each row's own mean:
    removing every patch's mean would leave the data on a hyperplane (a singular covariance),
    where no density, and so no log-likelihood, is defined.
``softmax`` / ``softmax:K``
    Checked (values in {0, 1}, or in [0, 1] unless ``for_likelihood``, with each group of K —
    the whole row for ``softmax`` — summing to 1) and passed through; ``inverse`` is the identity.

``binarize`` only matters for bernoulli and spin units (it is stored as ``"none"`` for the
others). Training uses ``transform(x)``: with ``binarize="none"`` grey values stay probabilities
(spin means), which the learning rules accept. Likelihoods, pseudo-likelihoods and reconstruction
errors are defined on the support only: ``transform(x, for_likelihood=True)`` raises a
``ValueError`` when values would stay grey. To evaluate a model trained with ``"none"``, choose
a binarisation for the evaluation data, e.g. ``dataclasses.replace(prep, binarize="threshold")``.

Every error is a ``ValueError`` of one line naming the argument, what was expected and what came.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Optional

import torch

from .. import _validation
from .transforms import as_tensor, binarize as _binarize, standardize

__all__ = ["Preparation", "BINARIZE_METHODS", "PREPARATION_VERSION"]

BINARIZE_METHODS = ("threshold", "sample", "none")
PREPARATION_VERSION = 1
_FAMILIES = ("bernoulli", "spin", "gaussian", "softmax")
_ALIASES = {"binary": "bernoulli", "ising": "spin"}
_KEYS = ("version", "units", "binarize", "threshold", "spin_data", "n_features", "mean", "std",
         "zca")
_LEGACY_KEYS = ("binarize", "standardize")


def _units_spec(units) -> str:
    """The canonical spec (``"bernoulli"``, ``"spin"``, ``"gaussian"``, ``"softmax"`` or
    ``"softmax:K"``) of a spec string or of a unit family object with a ``spec()`` method.

    The data layer does not import the unit families: it only reads their names."""
    if not isinstance(units, str) and callable(getattr(units, "spec", None)):
        units = units.spec()
    if not isinstance(units, str):
        raise ValueError(f"units: expected one of {', '.join(_FAMILIES)} or 'softmax:K', got "
                         f"{type(units).__name__}")
    name, sep, arg = units.strip().lower().partition(":")
    name = _ALIASES.get(name, name)
    if name in ("bernoulli", "spin", "gaussian") and not sep:
        return name
    if name == "gaussian" and arg.partition(":")[0] == "learned":
        return "gaussian"  # learned variances: the data are prepared as for any gaussian units
    if name == "softmax":
        if not sep:
            return "softmax"
        if re.fullmatch(r"[0-9]{1,9}", arg) and int(arg) >= 1:
            return f"softmax:{int(arg)}"
    raise ValueError(f"units: expected one of {', '.join(_FAMILIES)} or 'softmax:K', got "
                     f"{units[:80]!r}")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _stats(values, name: str) -> Optional[tuple]:
    """``values`` (tensor, array, list or tuple of finite numbers, 1-D) as a tuple of floats
    rounded to float32, or None."""
    if values is None:
        return None
    if isinstance(values, (list, tuple)):
        if not all(_is_number(v) for v in values):
            bad = next(v for v in values if not _is_number(v))
            raise ValueError(f"{name}: expected a list of numbers, found a "
                             f"{type(bad).__name__}")
    try:
        t = torch.as_tensor(values, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError, OverflowError) as err:
        raise ValueError(f"{name}: expected a 1-D array of numbers, could not convert "
                         f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") \
            from None
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array (n_features,), got shape "
                         f"{tuple(t.shape)}")
    t = t.to(torch.float32)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: expected finite float32 values, found NaN or inf (or values "
                         f"too large for float32)")
    return tuple(float(v) for v in t.tolist())


def _range(x: torch.Tensor) -> tuple:
    lo, hi = torch.aminmax(x)
    return lo.item(), hi.item()


@dataclasses.dataclass(frozen=True)
class Preparation:
    """How raw data ``(n_samples, n_features)`` become a model's visible states and back (see
    the module docstring for the rules of each unit family).

    Usually made by :meth:`fit` from the training data; the constructor takes the fields
    directly (e.g. ``Preparation("bernoulli", binarize="sample")`` for a model without a
    record). The record is frozen: ``dataclasses.replace(prep, binarize=...)`` makes a changed
    copy (validated again).

    Attributes
    ----------
    units : str
        The visible unit family: ``"bernoulli"``, ``"spin"``, ``"gaussian"``, ``"softmax"`` or
        ``"softmax:K"`` (a unit family object, e.g. ``model.visible``, is turned into its spec).
    binarize : ``"threshold"``, ``"sample"`` or ``"none"``
        How grey values become 0/1 for bernoulli and spin units; ``"none"`` for other units.
    threshold : float in [0, 1]
        The cut of ``binarize="threshold"`` (in [0, 1] data space): 1 where ``x > threshold``.
    spin_data : bool
        Spin units only: the training data were spin values in [-1, 1] (``inverse`` leaves
        spins as they are) rather than values in [0, 1] (``inverse`` maps ±1 to 0/1).
    n_features : int or None
        The width the record was made for; ``transform`` and ``inverse`` check it when set.
    mean, std : tuple of ``n_features`` floats, or None
        Gaussian units only: the training data's per-feature mean and std (std > 0).
    zca : tuple of ``n_features²`` floats, or None
        Gaussian units only: the ZCA whitening matrix ``Z`` (row-major; needs ``mean``/``std``),
        applied after the standardisation: ``v = ((x - mean) / std) Z``.
    """

    units: str = "bernoulli"
    binarize: str = "threshold"
    threshold: float = 0.5
    spin_data: bool = False
    n_features: Optional[int] = None
    mean: Optional[tuple] = dataclasses.field(default=None, repr=False)
    std: Optional[tuple] = dataclasses.field(default=None, repr=False)
    zca: Optional[tuple] = dataclasses.field(default=None, repr=False)

    def __post_init__(self):
        units = _units_spec(self.units)
        family = units.partition(":")[0]
        if not isinstance(self.binarize, str) or self.binarize not in BINARIZE_METHODS:
            raise ValueError(f"binarize: expected one of "
                             f"{', '.join(repr(m) for m in BINARIZE_METHODS)}, got "
                             f"{str(self.binarize)[:80]!r}")
        binarize = self.binarize if family in ("bernoulli", "spin") else "none"
        try:
            threshold = float(self.threshold) if _is_number(self.threshold) else math.nan
        except OverflowError:
            threshold = math.inf
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold: expected a number in [0, 1], got "
                             f"{str(self.threshold)[:80]}")
        if not isinstance(self.spin_data, bool):
            raise ValueError(f"spin_data: expected True or False, got "
                             f"{type(self.spin_data).__name__}")
        if self.spin_data and family != "spin":
            raise ValueError(f"spin_data: only spin units read ±1 data, got spin_data=True for "
                             f"{units} units")
        n = self.n_features
        if n is not None:
            n = _validation.integer(n, "n_features", minimum=1)
        mean, std = _stats(self.mean, "mean"), _stats(self.std, "std")
        if (mean is None) != (std is None):
            raise ValueError("mean, std: expected both (Gaussian standardisation) or neither, "
                             f"got only {'mean' if std is None else 'std'}")
        if mean is not None:
            if family != "gaussian":
                raise ValueError(f"mean, std: only gaussian units are standardised, got them "
                                 f"for {units} units")
            if len(mean) != len(std):
                raise ValueError(f"mean, std: expected the same length, got {len(mean)} and "
                                 f"{len(std)}")
            if n is None:
                n = len(mean)
            elif len(mean) != n:
                raise ValueError(f"mean, std: expected n_features={n} values, got {len(mean)}")
            if min(std) <= 0:
                raise ValueError(f"std: expected positive values, got minimum {min(std):g}")
        zca = _stats(self.zca, "zca")
        if zca is not None:
            if mean is None:
                raise ValueError("zca: a whitening matrix needs the mean and std it follows")
            if len(zca) != n * n:
                raise ValueError(f"zca: expected n_features² = {n * n} values, got {len(zca)}")
            z = torch.tensor(zca, dtype=torch.float64).reshape(n, n)
            if torch.linalg.matrix_rank(z).item() < n:
                raise ValueError("zca: expected an invertible whitening matrix, got a singular "
                                 "one")
        if family == "softmax" and n is not None and ":" in units:
            k = int(units.partition(":")[2])
            if n % k:
                raise ValueError(f"n_features: softmax groups of {k} units need a width that is "
                                 f"a multiple of {k}, got {n}")
        for name, value in (("units", units), ("binarize", binarize),
                            ("threshold", threshold), ("n_features", n),
                            ("mean", mean), ("std", std), ("zca", zca)):
            object.__setattr__(self, name, value)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def fit(cls, x, units, binarize: str = "threshold", threshold: float = 0.5, *,
            name: str = "x", whiten: bool = False, whiten_epsilon: float = 0.01
            ) -> "Preparation":
        """Learn the record from training data (deterministic: draws no random numbers).

        Parameters
        ----------
        x : ``(n_samples, n_features)`` raw training data (tensor, array or nested list)
        units : the visible unit family (spec string or unit family object, e.g. ``"spin"``)
        binarize : ``"threshold"``, ``"sample"`` or ``"none"`` (bernoulli and spin units)
        threshold : the cut of ``binarize="threshold"``
        name : the argument's name in error messages (e.g. ``"--data"``)
        whiten : bool
            Gaussian units only: ZCA-whiten instead of standardising (module docstring).
        whiten_epsilon : float > 0
            The whitening's regulariser, as a fraction of the mean eigenvalue.

        Returns
        -------
        Preparation with ``n_features`` set; for gaussian units the per-feature ``mean`` and
        ``std`` of ``x`` (with ``whiten``: the mean, std 1 and the ``zca`` matrix); for spin units ``spin_data`` (whether ``x`` holds spin values).

        Raises
        ------
        ValueError
            ``x`` is not a finite 2-D array, or its values do not fit the units (e.g. outside
            [0, 1] for bernoulli units).
        """
        x = as_tensor(x, name)
        spec = _units_spec(units)
        family, _, k = spec.partition(":")
        if k and x.shape[1] % int(k):
            raise ValueError(f"{name}: softmax groups of {k} units need a width that is a "
                             f"multiple of {k}, got {x.shape[1]}")
        fields = {}
        if family == "spin":
            fields["spin_data"] = _range(x)[0] < 0
        elif family == "gaussian" and whiten:
            eps = _validation.real(whiten_epsilon, "whiten_epsilon", 0.0, strict_minimum=True)
            if x.shape[0] < 2:
                raise ValueError(f"{name}: whitening needs at least 2 rows, got {x.shape[0]}")
            xd = x.double()
            mean = xd.mean(0)
            lam, u = torch.linalg.eigh(torch.cov(xd.t()).reshape(x.shape[1], x.shape[1]))
            lam = lam.clamp(min=0.0)
            z = (u * torch.rsqrt(lam + eps * lam.mean().clamp(min=1e-12))) @ u.t()
            fields.update(mean=mean, std=torch.ones_like(mean), zca=z.reshape(-1))
        elif family == "gaussian":
            _, mean, std = standardize(x)
            fields.update(mean=mean, std=std)
        prep = cls(spec, binarize=binarize, threshold=threshold, n_features=x.shape[1],
                   **fields)
        if family in ("bernoulli", "spin"):
            prep._unit_interval(x, name)
        elif family == "softmax":
            prep._check_softmax(x, name, relaxed=True)
        return prep

    # -- the two directions ---------------------------------------------------------------------
    def transform(self, x, generator: Optional[torch.Generator] = None, *,
                  for_likelihood: bool = False, name: str = "x") -> torch.Tensor:
        """Raw data to visible states (see the module docstring for the rules).

        Parameters
        ----------
        x : ``(n_samples, n_features)`` raw data (tensor, array or nested list); tensors keep
            their device
        generator : torch.Generator on ``x``'s device, used by ``binarize="sample"`` only
        for_likelihood : bool
            The result must lie on the units' support (0/1, ±1, one-hot), as likelihoods,
            pseudo-likelihoods and reconstruction errors need: grey values that
            ``binarize="none"`` would keep raise a ValueError.
        name : the argument's name in error messages (e.g. ``"--data"``)

        Returns
        -------
        torch.Tensor, float32, ``(n_samples, n_features)`` (may share memory with ``x`` when
        nothing changes).
        """
        x = as_tensor(x, name)
        self._check_width(x, name)
        family = self.units.partition(":")[0]
        if family in ("bernoulli", "spin"):
            u, spins = self._unit_interval(x, name)
            b = self._binary(u, generator, for_likelihood, name, spins)
            if family == "bernoulli":
                return b
            return x if spins and b is u else b * 2.0 - 1.0  # spin values left as they came
        if family == "gaussian":
            if self.mean is None:
                return x
            mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device)
            std = torch.tensor(self.std, dtype=torch.float32, device=x.device)
            if self.zca is not None:
                return (((x - mean) / std).double() @ self._zca(x.device)).float()
            return (x - mean) / std
        self._check_softmax(x, name, relaxed=not for_likelihood)
        return x

    def inverse(self, v, name: str = "v") -> torch.Tensor:
        """Visible states or means ``(n_samples, n_features)`` back to data space: spins to
        [0, 1] (unless the training data were ±1), Gaussian units un-standardised, bernoulli and
        softmax values unchanged. Returns float32 ``(n_samples, n_features)`` on ``v``'s device."""
        v = as_tensor(v, name)
        self._check_width(v, name)
        family = self.units.partition(":")[0]
        if family == "spin" and not self.spin_data:
            return (v + 1.0) * 0.5
        if family == "gaussian" and self.mean is not None:
            mean = torch.tensor(self.mean, dtype=torch.float32, device=v.device)
            std = torch.tensor(self.std, dtype=torch.float32, device=v.device)
            if self.zca is not None:
                v = torch.linalg.solve(self._zca(v.device).t(), v.double().t()).t().float()
            return v * std + mean
        return v

    def _zca(self, device) -> torch.Tensor:
        n = self.n_features
        return torch.tensor(self.zca, dtype=torch.float64, device=device).reshape(n, n)

    def log_det_jacobian(self) -> float:
        """``log |det dv/dx|`` of :meth:`transform` for gaussian units (0 for the others): add
        it to a log-density of the prepared data ``v`` to get one of the raw data ``x``
        (nats per row)."""
        if self.units != "gaussian" or self.mean is None:
            return 0.0
        out = -sum(math.log(s) for s in self.std)
        if self.zca is not None:
            out += torch.linalg.slogdet(self._zca("cpu"))[1].item()
        return out

    # -- checks ---------------------------------------------------------------------------------
    def _check_width(self, x: torch.Tensor, name: str) -> None:
        if self.n_features is not None and x.shape[1] != self.n_features:
            raise ValueError(f"{name}: expected {self.n_features} features (the width the "
                             f"preparation was made for), got {x.shape[1]}")

    def _unit_interval(self, x: torch.Tensor, name: str) -> tuple:
        """``(u, spins)``: ``x`` as values in [0, 1] (spin values ``m`` as ``(1 + m) / 2``) and
        whether ``x`` held spin values."""
        lo, hi = _range(x)
        if self.units == "spin" and lo < 0:
            if lo < -1 or hi > 1:
                raise ValueError(f"{name}: spin units take data in [0, 1] or spin values in "
                                 f"[-1, 1], got values in [{lo:g}, {hi:g}]")
            return (x + 1.0) * 0.5, True
        if lo < 0 or hi > 1:
            want = ("data in [0, 1] (grey levels or 0/1) or spin values in [-1, 1]"
                    if self.units == "spin" else "data in [0, 1] (grey levels or 0/1)")
            raise ValueError(f"{name}: {self.units} units take {want}, got values in "
                             f"[{lo:g}, {hi:g}] that cannot be binarised; use gaussian units for "
                             f"real-valued data")
        return x, False

    def _binary(self, u: torch.Tensor, generator, for_likelihood: bool, name: str,
                spins: bool) -> torch.Tensor:
        if torch.equal(u, u.round()):  # already 0/1 (or ±1): left alone, no random draws
            return u
        if self.binarize == "none":
            if for_likelihood:
                grey = u[u != u.round()].flatten()[0].item()
                shown = grey * 2 - 1 if spins else grey
                want = "±1" if self.units == "spin" else "0/1"
                raise ValueError(f"{name}: likelihoods need {want} data for {self.units} units, "
                                 f"found {shown:g} and binarize='none'; binarise with "
                                 f"'threshold' or 'sample'")
            return u
        return _binarize(u, self.binarize, self.threshold, generator)

    def _check_softmax(self, x: torch.Tensor, name: str, relaxed: bool) -> None:
        k = int(self.units.partition(":")[2] or x.shape[1])
        if x.shape[1] % k:
            raise ValueError(f"{name}: softmax groups of {k} units need a width that is a "
                             f"multiple of {k}, got {x.shape[1]}")
        lo, hi = _range(x)
        if lo < 0 or hi > 1 or (not relaxed and not torch.equal(x, x.round())):
            want = "[0, 1]" if relaxed else "{0, 1}"
            raise ValueError(f"{name}: softmax units take values in {want} (one-hot groups), "
                             f"got values in [{lo:g}, {hi:g}]" +
                             ("" if lo < 0 or hi > 1 else " that are not all 0/1"))
        sums = x.reshape(x.shape[0], -1, k).sum(-1)
        off = (sums - 1).abs() > 1e-4
        if off.any():
            raise ValueError(f"{name}: softmax units need each group of {k} values to sum to 1 "
                             f"(one unit on), found a group summing to "
                             f"{sums[off].flatten()[0].item():g}")

    # -- records --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-able dict of the record (``mean``/``std`` as lists), read by :meth:`from_dict`."""
        return {"version": PREPARATION_VERSION, "units": self.units, "binarize": self.binarize,
                "threshold": self.threshold, "spin_data": self.spin_data,
                "n_features": self.n_features,
                "mean": None if self.mean is None else list(self.mean),
                "std": None if self.std is None else list(self.std),
                **({} if self.zca is None else {"zca": list(self.zca)})}

    @classmethod
    def from_dict(cls, record, units=None) -> "Preparation":
        """Read a record written by :meth:`to_dict`, or the older ``transform`` form of model
        files, ``{"binarize": ..., "standardize": {"mean": [...], "std": [...]}}``.

        Parameters
        ----------
        record : dict (decoded JSON)
        units : the model's visible unit family (spec or object). Needed for the older form,
            which does not name it; for the current form it is checked against the record.

        Raises
        ------
        ValueError
            (one line, starting ``preparation:``) for anything but a valid record: a wrong
            type, an unknown key or version, bad values, lengths that do not agree.
        """
        try:
            return cls._from_dict(record, units)
        except ValueError as err:
            msg = str(err).splitlines()[0] if str(err) else "invalid record"
            raise ValueError(msg if msg.startswith("preparation:") else
                             f"preparation: {msg}") from None
        except (TypeError, KeyError, AttributeError, OverflowError, RecursionError) as err:
            raise ValueError(f"preparation: invalid record ({type(err).__name__})") from None

    @classmethod
    def _from_dict(cls, record, units) -> "Preparation":
        if not isinstance(record, dict):
            raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        if not all(isinstance(k, str) for k in record):
            raise ValueError("expected a JSON object with string keys")
        if "version" not in record and "units" not in record:
            return cls._from_legacy(record, units)
        unknown = sorted(set(record) - set(_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(repr(k[:40]) for k in unknown[:5])}; "
                             f"expected {', '.join(_KEYS)}")
        version = record.get("version")
        if not isinstance(version, int) or isinstance(version, bool) \
                or version != PREPARATION_VERSION:
            raise ValueError(f"version: expected {PREPARATION_VERSION}, got "
                             f"{str(version)[:40]}")
        for key in ("units", "binarize"):
            if not isinstance(record.get(key), str):
                raise ValueError(f"{key}: expected a string, got "
                                 f"{type(record.get(key)).__name__}")
        for key in ("mean", "std", "zca"):
            if record.get(key) is not None and not isinstance(record[key], list):
                raise ValueError(f"{key}: expected a list of numbers or null, got "
                                 f"{type(record[key]).__name__}")
        prep = cls(record["units"], binarize=record["binarize"],
                   threshold=record.get("threshold", 0.5),
                   spin_data=record.get("spin_data", False),
                   n_features=record.get("n_features"),
                   mean=record.get("mean"), std=record.get("std"), zca=record.get("zca"))
        if units is not None and _units_spec(units) != prep.units:
            raise ValueError(f"units: the record is for {prep.units} units, the model has "
                             f"{_units_spec(units)} visible units")
        return prep

    @classmethod
    def _from_legacy(cls, record: dict, units) -> "Preparation":
        unknown = sorted(set(record) - set(_LEGACY_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(repr(k[:40]) for k in unknown[:5])}; "
                             f"expected a record with 'version' and 'units', or the older "
                             f"form with {', '.join(_LEGACY_KEYS)}")
        if units is None:
            raise ValueError("the older transform form does not name the visible units: pass "
                             "units=")
        binarize = record.get("binarize", "threshold")
        if not isinstance(binarize, str):
            raise ValueError(f"binarize: expected a string, got {type(binarize).__name__}")
        std = record.get("standardize")
        mean = sd = None
        if std is not None:
            if not isinstance(std, dict) or set(std) != {"mean", "std"}:
                raise ValueError("standardize: expected an object with 'mean' and 'std'")
            if not isinstance(std["mean"], list) or not isinstance(std["std"], list):
                raise ValueError("standardize: expected lists of numbers for 'mean' and 'std'")
            mean, sd = std["mean"], std["std"]
        return cls(units, binarize=binarize, mean=mean, std=sd)

    def __repr__(self) -> str:
        parts = [f"units={self.units!r}", f"binarize={self.binarize!r}"]
        if self.binarize == "threshold" and self.threshold != 0.5:
            parts.append(f"threshold={self.threshold:g}")
        if self.spin_data:
            parts.append("spin_data=True")
        parts.append(f"n_features={self.n_features}")
        if self.mean is not None:
            parts.append(f"mean=<{len(self.mean)} values>, std=<{len(self.std)} values>")
        if self.zca is not None:
            parts.append("zca=<whitening>")
        return f"Preparation({', '.join(parts)})"
