"""Convolutional RBM with optional probabilistic max-pooling (Lee, Grosse, Ranganath & Ng 2009;
Norouzi, Ranjbar & Mori 2009).

States are images: visible ``v`` ``(n, C, H, W)`` and hidden ``h`` ``(n, K, H', W')`` with
``H' = H - kh + 1``, ``W' = W - kw + 1`` (one feature map per filter). With ``W = weight``
``(K, C, kh, kw)``, ``a = visible_bias`` ``(C,)`` (one per channel) and ``b = hidden_bias``
``(K,)`` (one per filter), the energy is

    E(v, h) = base_v(v) - Σ_c a_c Σ_xy v_cxy - Σ_k Σ_xy h_kxy (b_k + (W_k ⋆ v)_xy)

where ``W_k ⋆ v`` is the 'valid' cross-correlation of the image with filter k summed over
channels (``torch.nn.functional.conv2d``, torch's convention). The fields are

    hidden field   b + conv2d(v, W)                 shape (n, K, H', W')
    visible field  a + conv_transpose2d(h, W)       shape (n, C, H, W)

(``conv_transpose2d`` with the same tensor is the adjoint of ``conv2d``, so both are the
derivatives of the same bilinear term). Given one layer the other factorises as in a dense
RBM: binary hidden units are independent Bernoullis, visible units Bernoulli or unit-variance
Gaussian (``base_v(v) = Σ v²/2``, p(v | h) = N(visible field, 1); standardise the data).

Probabilistic max-pooling (``pool=P``, Lee et al. 2009, section 3.3): the hidden maps are cut
into P x P blocks, and in each block at most one unit is on. A block then has P² + 1 states
(one unit on, or all off) and, given v, follows a softmax over the fields of its units and a
zero for "all off":

    p(h_i = 1 | v) = exp(t_i) / (1 + Σ_{j in block} exp(t_j)),
    p(block off | v) = 1 / (1 + Σ_{j in block} exp(t_j)).

The pooling unit of a block is on when any unit of it is: :meth:`ConvRBM.pooled_mean` gives
``P(any on) = 1 - p(block off | v)``, the features Lee et al. pass on. The energy is the same
as without pooling; only the hidden support shrinks, so the hidden log-partition is
``Σ_blocks log(1 + Σ_{j in block} exp(t_j))`` (a logsumexp with a zero). H' and W' must be
multiples of P.

The hidden and visible families the model exposes (:attr:`ConvRBM.hidden`,
:attr:`ConvRBM.visible`) are :class:`~boltzkit.units.Units` that take image-shaped fields
(mean, sample, log-partition summed over each image, support check, enumeration of the states
as images), so that the block-Gibbs sampler, the CD/PCD estimators and the exact enumeration
of :mod:`boltzkit.exact.rbm` work with this model unchanged. Inverse temperatures ``beta``
(a number or ``(n,)``, one per row) scale fields, not base measures, as everywhere.

Parameters and energies only: no loops, no optimisers.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import _validation as _v
from .._validation import real
from ..units import Beta, Units, get_units, row_beta, uniform
from ..units.base import _check_finite, _scale
from ..units.bernoulli import Bernoulli
from ..units.gaussian import Gaussian
from ._validation import ConfigChecked, clip, config_choice, config_keys, config_spec

__all__ = ["ConvRBM", "ImageUnits", "PooledBernoulli", "VISIBLE_UNITS", "EXP_FLOOR"]

#: The visible families a ConvRBM may have.
VISIBLE_UNITS = ("bernoulli", "gaussian")

#: Exponents in the pooling's block softmax are raised to at least this. ``e^-80`` (2e-35) is
#: far below anything a probability next to 1 can show in float32 (or float64: 1e-16), and it
#: keeps the exponentials out of the subnormal range (below ``e^-87.3`` in float32), which
#: x86 processors compute about ten times slower: a trained model's fields reach -270, and
#: 240,000 exponentials of them took 1.2 ms against 0.16 ms with the floor.
EXP_FLOOR = -80.0


def _image_beta(beta: Beta) -> Beta:
    """A per-row ``beta`` ``(n, 1)`` (what :func:`~boltzkit.units.row_beta` gives) as
    ``(n, 1, 1, 1)``, which broadcasts against image-shaped fields ``(n, C, H, W)``; numbers and
    0-d tensors as they are."""
    if isinstance(beta, torch.Tensor) and beta.dim() in (1, 2):
        return beta.reshape(-1, 1, 1, 1)
    return beta


class ImageUnits(Units):
    """A unit family (``units``) over a layer of images ``(n, *shape)``: every method takes
    image-shaped fields and states ``(n, C, H, W)`` and applies ``units`` to each row flattened
    to ``C*H*W`` units (means and draws come back image-shaped; ``log_partition`` and ``base``
    are ``(n,)``; :meth:`states` yields images). ``n_units`` arguments count units,
    ``C*H*W``."""

    def __init__(self, units: Units, shape):
        self.units = units
        self.shape = tuple(int(s) for s in shape)
        self.name = units.name
        self.discrete = units.discrete
        self.identity_statistic = units.identity_statistic

    @staticmethod
    def _flat(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    def mean(self, field, beta=1.0, *, params=None):
        return self.units.mean(self._flat(field), beta, params=params).view(field.shape)

    def sample_from_mean(self, mean, generator=None, *, params=None):
        return self.units.sample_from_mean(self._flat(mean), generator,
                                           params=params).view(mean.shape)

    def log_partition(self, field, beta=1.0, *, params=None):
        return self.units.log_partition(self._flat(field), beta, params=params)

    def base(self, s, *, params=None):
        return self.units.base(self._flat(s), params=params)

    def check(self, s, name="input", relaxed=False):
        self.units.check(s, name, relaxed)

    def n_states(self, n_units):
        try:
            return self.units.n_states(n_units)
        except OverflowError:  # (2.0 ** n for a layer of 1024 units or more)
            return math.inf

    def states(self, n_units, start=0, stop=None, dtype=torch.float32, device=None):
        return self.units.states(n_units, start, stop, dtype=dtype,
                                 device=device).view(-1, *self.shape)

    def init_bias(self, data_mean):
        return self.units.init_bias(data_mean)

    def spec(self):
        return self.units.spec()

    def __repr__(self):
        return f"ImageUnits({self.units!r}, {self.shape})"


class PooledBernoulli(Units):
    """Binary hidden maps ``(n, K, H', W')`` under probabilistic max-pooling over ``pool`` x
    ``pool`` blocks (see the module docstring): at most one unit on per block.

    ``mean(field, beta)``: per block a softmax over ``beta * field`` of its units and a zero
    ("all off"), the units' entries kept, image-shaped; ``sample_from_mean``: one categorical
    draw per block (one uniform each); ``log_partition``: ``Σ_blocks log(1 + Σ exp(beta t))``
    per row ``(n,)``, and ``log_partition_step`` its change over a small step of beta (for
    annealed importance sampling); ``block_sum``: per-block sums; ``check``: 0/1 (relaxed: [0, 1]) with block sums at most 1;
    ``states``: every joint state, block b's digit (0 = off, d = unit d-1 on, row-major within
    the block) in base ``pool² + 1``, first block fastest.
    """

    name = "bernoulli"

    def __init__(self, pool: int, shape):
        self.pool = int(pool)
        self.shape = tuple(int(s) for s in shape)
        k, hh, ww = self.shape
        if hh % self.pool or ww % self.pool:
            raise ValueError(f"pool: expected a divisor of the hidden maps' height and width "
                             f"{hh} x {ww}, got {self.pool}")
        self.n_blocks = k * (hh // self.pool) * (ww // self.pool)

    def _unblocks(self, y: torch.Tensor) -> torch.Tensor:
        """``(n, K, H'/P, W'/P, P*P)`` -> ``(n, K, H', W')`` (entry d of a block's last axis
        is its unit d, row-major)."""
        n, k, hb, wb, _ = y.shape
        p = self.pool
        return (y.reshape(n, k, hb, wb, p, p).permute(0, 1, 2, 4, 3, 5)
                .reshape(n, k, hb * p, wb * p))

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, K, H', W')`` viewed as ``(n, K, H'/P, P, W'/P, P)`` (no copy for contiguous
        maps): a block's units are axes 3 and 5."""
        n, k, hh, ww = x.shape
        p = self.pool
        return x.reshape(n, k, hh // p, p, ww // p, p)

    def _slices(self, x: torch.Tensor) -> list:
        """The P² strided views ``x[:, :, i::P, j::P]`` ``(n, K, H'/P, W'/P)``, one per position
        (i, j) within a block, row-major: every block's d-th unit is entry d of the list.

        The block computations below work on these: P² elementwise operations on maps of
        1/P² the size cost about one pass over the maps, where reductions over the size-P axes
        of a block view, or pooling calls, cost several (measured for 24 maps of 20 x 20 and a
        batch of 100: 3.5 ms for the block softmax against 10 ms for the pooling form)."""
        p = self.pool
        return [x[:, :, i::p, j::p] for i in range(p) for j in range(p)]

    @staticmethod
    def _tracked(parts) -> bool:
        """Whether autograd follows any of ``parts`` (then no in-place shortcuts)."""
        return torch.is_grad_enabled() and any(t.requires_grad for t in parts)

    def _assemble(self, parts: list, like: torch.Tensor) -> torch.Tensor:
        """Maps ``(n, K, H', W')`` whose position d within each block holds ``parts[d]``
        (the inverse of :meth:`_slices`), a differentiable copy (the fast paths below write
        into place instead)."""
        n, k, hb, wb = parts[0].shape
        p = self.pool
        return (torch.stack(parts, -1).view(n, k, hb, wb, p, p).permute(0, 1, 2, 4, 3, 5)
                .reshape(like.shape))

    def block_sum(self, x: torch.Tensor) -> torch.Tensor:
        """Per block, the sum of its units' entries: ``(n, K, H'/P, W'/P)`` for ``x``
        ``(n, K, H', W')``."""
        parts = self._slices(x)
        out = parts[0].clone()
        for s in parts[1:]:
            out.add_(s)
        return out

    def _softmax_parts(self, field, beta):
        """Per block, for the scaled field ``x``: ``m = max(0, max x)`` (a constant: no
        gradient flows through it), the P² terms ``e_d = exp(x_d - m)`` (see :meth:`_slices`)
        and ``z = Σ_d e_d + exp(-m)``, so that p(unit d) = e_d / z and p(off) = exp(-m) / z;
        every exponent is <= 0 (no overflow) and at least :data:`EXP_FLOOR` (see there).
        Shapes ``(n, K, H'/P, W'/P)``."""
        x = _scale(field, _image_beta(beta))
        xs = self._slices(x)
        with torch.no_grad():
            m = xs[0].clamp(min=0.0)
            for s in xs[1:]:
                torch.maximum(m, s, out=m)
        z = torch.neg(m).clamp_(min=EXP_FLOOR).exp_()
        if self._tracked(xs):
            es = [torch.exp((s - m).clamp(min=EXP_FLOOR)) for s in xs]
            return m, es, sum(es, z)
        es = [torch.sub(s, m).clamp_(min=EXP_FLOOR).exp_() for s in xs]
        for e in es:
            z.add_(e)
        return m, es, z

    def mean(self, field, beta=1.0, *, params=None):
        _, es, z = self._softmax_parts(field, beta)
        r = torch.reciprocal(z)
        if self._tracked(es):
            return self._assemble([e * r for e in es], field)
        out = torch.empty(field.shape, dtype=r.dtype, device=r.device)
        for view, e in zip(self._slices(out), es):
            torch.mul(e, r, out=view)
        return out

    def block_off(self, field, beta=1.0) -> torch.Tensor:
        """p(block all off | field), ``(n, K, H'/P, W'/P)``."""
        m, _, z = self._softmax_parts(field, beta)
        return torch.exp(-m) / z

    def sample_from_mean(self, mean, generator=None, *, params=None):
        parts = self._slices(mean.detach())
        u = uniform(parts[0].shape, generator, mean.dtype, mean.device)
        # unit d of a block is on when u falls in [c_{d-1}, c_d), c_d = p_0 + ... + p_d: the
        # intervals follow one running sum, so they are disjoint and at most one unit turns on
        # (u >= the last sum: all off)
        out = torch.empty(mean.shape, dtype=mean.dtype, device=mean.device)
        below, c = None, None
        for view, s in zip(self._slices(out), parts):
            c = s.clone() if c is None else c.add_(s)
            now = torch.lt(u, c)  # u < c_d; u < c_{d-1} implies it, so xor is "now, not before"
            view.copy_(now if below is None else torch.logical_xor(now, below))
            below = now
        return out

    def log_partition(self, field, beta=1.0, *, params=None):
        m, _, z = self._softmax_parts(field, beta)
        return (m + torch.log(z)).flatten(1).sum(1)

    def log_partition_step(self, field, mean_from, d: float) -> torch.Tensor:
        """``log_partition(field, beta + d) - log_partition(field, beta)`` per row ``(n,)``,
        given ``mean_from = mean(field, beta)``, without cancellation for tiny ``d``: per block
        ``log(p_off + Σ_j p_j e^{d t_j}) = log1p(Σ_j p_j expm1(d t_j))`` (for ``|d t| < 0.5``,
        say, where expm1 cannot overflow; annealed importance sampling's small steps)."""
        y = torch.mul(field, d).expm1_().mul_(mean_from)
        return self.block_sum(y).log1p_().flatten(1).sum(1)

    def base(self, s, *, params=None):
        return s.new_zeros(s.shape[:1])

    def check(self, s, name="input", relaxed=False):
        Bernoulli().check(s, name, relaxed)
        if s.dim() != 4 or not s.numel():
            return
        sums = self.block_sum(s)
        limit = 1.0 + (1e-5 if relaxed else 0.0)
        if bool((sums > limit).any()):
            raise ValueError(f"{name}: probabilistic max-pooling allows at most one unit on "
                             f"per {self.pool}x{self.pool} block, found a block summing to "
                             f"{float(sums.max()):g}")

    def check_size(self, n_units, name="layer"):
        if n_units != self.n_blocks * self.pool ** 2:
            raise ValueError(f"{name}: expected {self.n_blocks * self.pool ** 2} units, got "
                             f"{n_units}")

    def n_states(self, n_units):
        try:
            return float(self.pool ** 2 + 1) ** (n_units // self.pool ** 2)
        except OverflowError:  # more states than a float holds
            return math.inf

    def states(self, n_units, start=0, stop=None, dtype=torch.float32, device=None):
        self.check_size(n_units, "n_units")
        radix = self.pool ** 2 + 1
        stop = int(self.n_states(n_units)) if stop is None else stop
        idx = torch.arange(start, stop, device=device, dtype=torch.int64)
        powers = radix ** torch.arange(self.n_blocks, device=device, dtype=torch.int64)
        digits = (idx[:, None] // powers) % radix  # (m, n_blocks)
        onehot = F.one_hot(digits, radix)[..., 1:].to(dtype)  # digit 0: the block is off
        k, hh, ww = self.shape
        p = self.pool
        return self._unblocks(onehot.reshape(-1, k, hh // p, ww // p, p * p))

    def init_bias(self, data_mean):
        return torch.zeros_like(data_mean)

    def spec(self):
        return "bernoulli"

    def __repr__(self):
        return f"PooledBernoulli(pool={self.pool}, shape={self.shape})"


def _int_tuple(value, name: str, length: int, square: bool = False) -> tuple:
    """``value`` as a tuple of ``length`` positive ints (``square``: an int k means (k, k))."""
    if square and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    try:
        items = tuple(value)
    except TypeError:
        items = None
    if items is None or len(items) != length or any(
            isinstance(x, bool) or not isinstance(x, numbers.Integral) or x < 1 for x in items):
        want = f"{length} positive integers" + (" (or one, for a square)" if square else "")
        raise ValueError(f"{name}: expected {want}, got {clip(value)}")
    return tuple(int(x) for x in items)


def _config_ints(config: dict, key: str, length: int) -> tuple:
    value = config.get(key)
    if key not in config:
        raise ValueError(f"config[{key!r}]: missing")
    if not isinstance(value, list) or len(value) != length or any(
            isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in value):
        raise ValueError(f"config[{key!r}]: expected a list of {length} integers >= 1, got "
                         f"{clip(value)}")
    return tuple(value)


class ConvRBM(ConfigChecked):
    """Convolutional RBM: shared filters, binary hidden feature maps, optional probabilistic
    max-pooling (see the module docstring for the energy).

    Parameters
    ----------
    image_shape : (C, H, W)
        Channels, height and width of the visible images.
    n_filters : int
        Number of filters K (hidden feature maps).
    filter_shape : (kh, kw) or int
        Filter height and width (an int for a square filter); at most the image's.
    pool : int, optional
        Probabilistic max-pooling over ``pool`` x ``pool`` blocks of each hidden map (at least
        2; H - kh + 1 and W - kw + 1 must be multiples of it); ``None``: no pooling.
    visible : "bernoulli" or "gaussian"
        The visible family (Gaussian: unit variance, data standardised first).
    init_std : float
        Filters start as N(0, init_std²); biases at 0.
    generator : torch.Generator, optional
        Source of the initial filters (equal generators give equal models).
    device, dtype
        Where the parameters live (float32 by default).

    Attributes
    ----------
    weight : Parameter ``(K, C, kh, kw)``
    visible_bias : Parameter ``(C,)``
    hidden_bias : Parameter ``(K,)``
    hidden_shape : ``(K, H - kh + 1, W - kw + 1)``
    n_visible, n_hidden : int
        Units per image, ``C*H*W`` and ``K*H'*W'``.
    visible, hidden : Units
        The families over image-shaped layers (:class:`ImageUnits`, :class:`PooledBernoulli`).

    Inputs: visible states ``(n, C, H, W)``, hidden states ``(n, K, H', W')``, tensors or NumPy
    arrays, finite and within the layer's support (its convex hull for means: [0, 1] for
    binary units; with pooling, block sums at most 1); one ``ValueError`` naming the argument
    otherwise. ``check=False`` skips that for callers passing the model's own states.
    ``beta``: a number or ``(n,)``, one inverse temperature per row.
    """

    def __init__(self, image_shape, n_filters: int, filter_shape, pool: Optional[int] = None,
                 visible="bernoulli", *, init_std: float = 0.01,
                 generator: Optional[torch.Generator] = None, device=None, dtype=None):
        super().__init__()
        c, hgt, wid = _int_tuple(image_shape, "image_shape", 3)
        k = _v.integer(n_filters, "n_filters", 1)
        kh, kw = _int_tuple(filter_shape, "filter_shape", 2, square=True)
        if kh > hgt or kw > wid:
            raise ValueError(f"filter_shape: expected at most the image's {hgt} x {wid}, got "
                             f"{kh} x {kw}")
        if pool is not None:
            pool = _v.integer(pool, "pool", 2)
        units = get_units(visible)
        if not isinstance(units, (Bernoulli, Gaussian)) or units.spec() not in VISIBLE_UNITS:
            raise ValueError(f"visible: expected one of {', '.join(VISIBLE_UNITS)}, got "
                             f"{clip(visible)}")
        init_std = real(init_std, "init_std", 0.0)
        if _v.generator(generator) is None:
            generator = torch.Generator().manual_seed(0)
        device, dtype = _v.device(device), _v.float_dtype(dtype)
        n_weights = k * c * kh * kw
        _v.memory(5 * 4 * n_weights, f"ConvRBM({k} filters of {c}x{kh}x{kw}): its weights",
                  device)
        self.image_shape = (c, hgt, wid)
        self.n_filters, self.filter_shape, self.pool = k, (kh, kw), pool
        self.hidden_shape = (k, hgt - kh + 1, wid - kw + 1)
        self.n_visible = c * hgt * wid
        self.n_hidden = math.prod(self.hidden_shape)
        self.visible: Units = ImageUnits(units, self.image_shape)
        self.hidden: Units = (ImageUnits(Bernoulli(), self.hidden_shape) if pool is None
                              else PooledBernoulli(pool, self.hidden_shape))
        w = torch.randn(k, c, kh, kw, generator=generator, dtype=dtype,
                        device=generator.device) * init_std
        self.weight = nn.Parameter(w.to(device))
        self.visible_bias = nn.Parameter(torch.zeros(c, dtype=dtype, device=device))
        self.hidden_bias = nn.Parameter(torch.zeros(k, dtype=dtype, device=device))

    #: the families own no parameters (the vocabulary samplers and estimators read)
    visible_params = None
    hidden_params = None
    _visible_param_names = ()
    _hidden_param_names = ()

    # -- configuration --------------------------------------------------------------------------
    def config(self) -> dict:
        return {"image_shape": list(self.image_shape), "n_filters": self.n_filters,
                "filter_shape": list(self.filter_shape), "pool": self.pool,
                "visible": self.visible.spec()}

    @classmethod
    def _config_args(cls, config: dict) -> dict:
        """The constructor's arguments from a configuration, checked strictly; nothing is
        allocated (sizes are checked for consistency here, before any tensor is built)."""
        keys = ("image_shape", "n_filters", "filter_shape", "pool", "visible")
        config_keys(config, keys, "ConvRBM")
        image = _config_ints(config, "image_shape", 3)
        filt = _config_ints(config, "filter_shape", 2)
        k = config.get("n_filters")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"config['n_filters']: expected an integer >= 1, got {clip(k)}")
        pool = config.get("pool")
        if pool is not None and (isinstance(pool, bool) or not isinstance(pool, int)
                                 or pool < 2):
            raise ValueError(f"config['pool']: expected null or an integer >= 2, got "
                             f"{clip(pool)}")
        visible = config_spec(config, "visible", "bernoulli")
        config_choice({"visible": visible}, "visible", VISIBLE_UNITS)
        if filt[0] > image[1] or filt[1] > image[2]:
            raise ValueError(f"config['filter_shape']: {list(filt)} is larger than the image "
                             f"{list(image)}")
        hh, ww = image[1] - filt[0] + 1, image[2] - filt[1] + 1
        if pool is not None and (hh % pool or ww % pool):
            raise ValueError(f"config['pool']: {pool} does not divide the hidden maps "
                             f"{hh} x {ww}")
        return {"image_shape": image, "n_filters": k, "filter_shape": filt, "pool": pool,
                "visible": visible}

    @classmethod
    def tensor_shapes(cls, config: dict) -> dict:
        """``{name: shape}`` of the tensors of a model of ``config`` (nothing is allocated)."""
        a = cls._config_args(config)
        c, k = a["image_shape"][0], a["n_filters"]
        return {"weight": (k, c) + tuple(a["filter_shape"]), "visible_bias": (c,),
                "hidden_bias": (k,)}

    def extra_repr(self) -> str:
        return (f"image_shape={self.image_shape}, n_filters={self.n_filters}, "
                f"filter_shape={self.filter_shape}, pool={self.pool}, "
                f"visible={self.visible.spec()!r}")

    # -- input checks ---------------------------------------------------------------------------
    def _as_images(self, x, units, shape, name, relaxed) -> torch.Tensor:
        x = _v.from_numpy(x, name)
        want = f"(n, {', '.join(str(s) for s in shape)})"
        if not torch.is_tensor(x):
            raise ValueError(f"{name}: expected a tensor of shape {want}, got "
                             f"{type(x).__name__}")
        if x.is_complex():
            raise ValueError(f"{name}: expected real numbers, got a {x.dtype} tensor")
        if x.dim() != 4 or tuple(x.shape[1:]) != tuple(shape):
            hint = (f" (rows of {math.prod(shape)} features: x.reshape(-1, "
                    f"{', '.join(str(s) for s in shape)}))"
                    if x.dim() == 2 and x.shape[-1] == math.prod(shape) else "")
            raise ValueError(f"{name}: expected shape {want}, got {tuple(x.shape)}{hint}")
        if x.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one image, got an empty batch")
        x = x.to(device=self.weight.device, dtype=self.weight.dtype)
        _check_finite(x, name)
        units.check(x, name, relaxed)
        return x

    def check_visible(self, v, name: str = "v", relaxed: bool = False) -> torch.Tensor:
        """Check visible images ``(n, C, H, W)``: finite, in the support (``relaxed``: its
        convex hull). Returns them in this model's dtype and device."""
        return self._as_images(v, self.visible, self.image_shape, name, relaxed)

    def check_hidden(self, h, name: str = "h", relaxed: bool = False) -> torch.Tensor:
        """Check hidden maps ``(n, K, H', W')``: 0/1 (``relaxed``: [0, 1]), with pooling at most
        one unit on (block sums at most 1) per block."""
        return self._as_images(h, self.hidden, self.hidden_shape, name, relaxed)

    def _visible_in(self, v, check, name="v"):
        return self.check_visible(v, name, relaxed=True) if check else v

    def _hidden_in(self, h, check, name="h"):
        return self.check_hidden(h, name, relaxed=True) if check else h

    # -- fields and conditionals ---------------------------------------------------------------
    def hidden_field(self, v: torch.Tensor) -> torch.Tensor:
        """``b + conv2d(v, W)``, shape ``(n, K, H', W')`` for ``v`` ``(n, C, H, W)``."""
        return F.conv2d(v, self.weight, self.hidden_bias)

    def visible_field(self, h: torch.Tensor) -> torch.Tensor:
        """``a + conv_transpose2d(h, W)``, shape ``(n, C, H, W)`` for ``h``
        ``(n, K, H', W')``.

        For one-channel images on the CPU the same sum is formed as a matrix product and a
        fold (``F.fold``, col2im): ``Wᵀ h`` gives every position's ``kh x kw`` patch of
        contributions, which the fold adds into place. PyTorch's CPU transposed convolution
        (oneDNN) is slow for so few output channels: for 24 filters of 9 x 9, maps of 20 x 20
        and a batch of 100 it took 14 ms where the product and fold take 5 ms (12x12 filters:
        27 ms against 10 ms); with 24 channels it is the other way round (4 ms against 16 ms),
        so images of several channels, and other devices, keep ``conv_transpose2d``."""
        c = self.image_shape[0]
        if c == 1 and h.device.type == "cpu":
            n, k, hh, ww = h.shape
            kh, kw = self.filter_shape
            # (bmm of the expanded filters: matmul's broadcasting copies both operands when the
            # filters require a gradient, even under no_grad, which took 18 ms instead of 5)
            wt = self.weight.reshape(k, c * kh * kw).t().expand(n, c * kh * kw, k)
            cols = torch.bmm(wt, h.reshape(n, k, hh * ww))
            out = F.fold(cols, self.image_shape[1:], (kh, kw))
            return out + self.visible_bias.view(1, c, 1, 1)
        return F.conv_transpose2d(h, self.weight, self.visible_bias)

    def hidden_mean(self, v, beta: Beta = 1.0, *, check: bool = True) -> torch.Tensor:
        """E_beta[h | v], ``(n, K, H', W')`` for ``v`` ``(n, C, H, W)``."""
        v = self._visible_in(v, check)
        return self.hidden.mean(self.hidden_field(v), row_beta(beta, v.shape[0]))

    def pooled_mean(self, v, beta: Beta = 1.0, *, check: bool = True) -> torch.Tensor:
        """P(pooling unit on | v) = P(any unit of its block on), ``(n, K, H'/P, W'/P)``: the
        features a pooled ConvRBM hands on. Without pooling, :meth:`hidden_mean`."""
        v = self._visible_in(v, check)
        b = row_beta(beta, v.shape[0])
        if self.pool is None:
            return self.hidden.mean(self.hidden_field(v), b)
        return 1.0 - self.hidden.block_off(self.hidden_field(v), b)

    def visible_mean(self, h, beta: Beta = 1.0, *, check: bool = True) -> torch.Tensor:
        """E_beta[v | h], ``(n, C, H, W)`` for ``h`` ``(n, K, H', W')``."""
        h = self._hidden_in(h, check)
        return self.visible.mean(self.visible_field(h), row_beta(beta, h.shape[0]))

    def sample_hidden(self, v, generator: Optional[torch.Generator] = None, beta: Beta = 1.0,
                      *, check: bool = True) -> torch.Tensor:
        """A draw of h ~ p_beta(h | v), ``(n, K, H', W')``."""
        v = self._visible_in(v, check)
        return self.hidden.sample(self.hidden_field(v), generator, row_beta(beta, v.shape[0]))

    def sample_visible(self, h, generator: Optional[torch.Generator] = None, beta: Beta = 1.0,
                       *, check: bool = True) -> torch.Tensor:
        """A draw of v ~ p_beta(v | h), ``(n, C, H, W)``."""
        h = self._hidden_in(h, check)
        return self.visible.sample(self.visible_field(h), generator, row_beta(beta, h.shape[0]))

    def gibbs_vhv(self, v, generator: Optional[torch.Generator] = None, beta: Beta = 1.0, *,
                  check: bool = True) -> tuple:
        """One block-Gibbs step v -> h -> v'; returns ``(h, v')``."""
        h = self.sample_hidden(v, generator, beta, check=check)
        return h, self.sample_visible(h, generator, beta, check=False)

    def gibbs_hvh(self, h, generator: Optional[torch.Generator] = None, beta: Beta = 1.0, *,
                  check: bool = True) -> tuple:
        """One block-Gibbs step h -> v -> h'; returns ``(v, h')``."""
        v = self.sample_visible(h, generator, beta, check=check)
        return v, self.sample_hidden(v, generator, beta, check=False)

    def reconstruction(self, v, *, check: bool = True) -> torch.Tensor:
        """Mean-field reconstruction E[v | E[h | v]], ``(n, C, H, W)``."""
        return self.visible_mean(self.hidden_mean(v, check=check), check=False)

    # -- energies -------------------------------------------------------------------------------
    def energy(self, v, h, *, check: bool = True) -> torch.Tensor:
        """E(v, h), ``(n,)`` for ``v`` ``(n, C, H, W)`` and ``h`` ``(n, K, H', W')``; linear in
        every parameter, so its gradient at ``h = E[h | v]`` is E[dE/dθ | v]."""
        if check:
            v, h = self.check_visible(v, "v"), self.check_hidden(h, "h")
            if v.shape[0] != h.shape[0]:
                raise ValueError(f"h: expected {v.shape[0]} images like v, got {h.shape[0]}")
        return (self.visible.base(v) - v.sum((2, 3)) @ self.visible_bias
                - (h * self.hidden_field(v)).flatten(1).sum(1))

    def energy_gradient(self, v_pos, h_pos, v_neg, h_neg) -> dict:
        """``mean_pos dE/dθ - mean_neg dE/dθ`` for every parameter, in closed form (the energy
        is linear in each): ``{"weight": (K, C, kh, kw), "visible_bias": (C,),
        "hidden_bias": (K,)}`` for images ``v_*`` ``(n_*, C, H, W)`` and maps ``h_*``
        ``(n_*, K, H', W')`` (conditional means E[h | v] make each the exact conditional
        expectation). The loss gradient CD and PCD hand to the update; what autograd of the
        mean energies gives, with two filter correlations instead of two more convolutions
        and their backward passes."""
        shape = tuple(self.weight.shape)
        corr = torch.nn.grad.conv2d_weight
        n_pos, n_neg = v_pos.shape[0], v_neg.shape[0]
        gw = corr(v_neg, shape, h_neg).div_(n_neg)
        gw.sub_(corr(v_pos, shape, h_pos), alpha=1.0 / n_pos)
        return {"weight": gw,
                "visible_bias": v_neg.sum((2, 3)).mean(0) - v_pos.sum((2, 3)).mean(0),
                "hidden_bias": h_neg.sum((2, 3)).mean(0) - h_pos.sum((2, 3)).mean(0)}

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """The free energy F(v) ``(n,)``."""
        return self.free_energy(v)

    def free_energy(self, v, beta: Beta = 1.0, *, check: bool = True) -> torch.Tensor:
        """F(v) = base_v(v) - beta Σ_c a_c Σ v_c - logpart_h(beta (b + conv2d(v, W))),
        ``(n,)`` for ``v`` ``(n, C, H, W)`` (the hidden log-partition per block under
        pooling)."""
        v = self._visible_in(v, check)
        b = row_beta(beta, v.shape[0])
        return (self.visible.base(v) - _times(b, v.sum((2, 3)) @ self.visible_bias)
                - self.hidden.log_partition(self.hidden_field(v), b))

    def free_energy_hidden(self, h, beta: Beta = 1.0, *, check: bool = True) -> torch.Tensor:
        """F'(h) = -log Σ_v exp(-E(v, h)) (an integral for Gaussian v), ``(n,)`` for ``h``
        ``(n, K, H', W')``."""
        h = self._hidden_in(h, check)
        b = row_beta(beta, h.shape[0])
        return (-_times(b, h.sum((2, 3)) @ self.hidden_bias)
                - self.visible.log_partition(self.visible_field(h), b))

    def init_visible_bias(self, data) -> None:
        """Set each channel's bias so that, with zero filters, the model reproduces the data's
        mean of that channel (log p/(1-p) for binary units)."""
        mean = self.check_visible(data, "data", relaxed=True).mean((0, 2, 3))
        with torch.no_grad():
            self.visible_bias.copy_(self.visible.init_bias(mean))


def _times(beta: Beta, x: torch.Tensor) -> torch.Tensor:
    """``beta * x`` for per-row ``x`` ``(n,)`` and ``beta`` a number or ``(n, 1)``."""
    if isinstance(beta, torch.Tensor):
        return beta.reshape(-1).to(device=x.device, dtype=x.dtype) * x
    return beta * x
