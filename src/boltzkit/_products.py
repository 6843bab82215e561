"""Matrix products on the fastest correct path the installed PyTorch offers on this CPU.

PyTorch's CPU ``torch.mm`` / ``torch.addmm`` in float32 go through its BLAS (MKL in the official
wheels). On some CPUs (measured on an AMD Zen 5 with AVX-512: BENCHMARKS.md, "The CPU floor")
that reaches about half of what the cores can do, while PyTorch's own oneDNN library computes
the same float32 product (the same IEEE arithmetic, float32 accumulation) in about half the time.
The RBM's hot products (fields, statistics, the fused update, AIS) therefore go through
:func:`addmm`, :func:`mm` and :func:`add_outer_` here, which choose per call:

- ``"onednn"``: oneDNN's float32 linear primitive (``torch.ops.mkldnn._linear_pointwise``),
  used for float32 CPU tensors that need no autograd graph, when the product has at least
  :data:`MIN_MACS` multiply-adds (below that oneDNN's fixed cost of about 11 µs per call
  loses to BLAS) and when a self-check at first use found the operator present and correct;
- ``"blas"``: ``torch.addmm`` / ``torch.mm`` (every other case: CUDA, float64, autograd,
  small products, a PyTorch without oneDNN).

:func:`set_products` picks the route for the whole process: ``"auto"`` (the default: the
above), ``"blas"`` (always BLAS: what boltzkit did before), or ``"bf16"``: opt-in bfloat16
products on the CPU (both operands rounded to bfloat16, products accumulated in float32 inside
oneDNN, the result rounded to bfloat16 and returned as float32; weights, momentum, biases,
sampling and everything outside the products stay float32). ``BOLTZKIT_PRODUCTS`` in the
environment sets the starting mode.

The route is chosen by rules, never by timing, so a run and its resumption take the same path
and resume stays bit-identical.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import torch

MODES = ("auto", "blas", "bf16")
#: products with fewer multiply-adds stay on BLAS (measured crossover: about 1e6 on this CPU)
MIN_MACS = 1 << 20

_state = {"mode": None, "onednn": None}


def _env_mode() -> str:
    value = os.environ.get("BOLTZKIT_PRODUCTS", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"BOLTZKIT_PRODUCTS={value!r}: expected one of {', '.join(MODES)}")
    return value


def set_products(mode: str) -> str:
    """Choose how boltzkit computes its large CPU matrix products: ``"auto"`` (oneDNN float32
    where it is present and correct, else BLAS), ``"blas"`` (PyTorch's ``torch.addmm``
    always), or ``"bf16"`` (bfloat16 operands, float32 accumulation; needs oneDNN). Returns
    the mode set. Affects this process only; GPU products are never rerouted."""
    if not isinstance(mode, str) or mode.strip().lower() not in MODES:
        raise ValueError(f"products: expected one of {', '.join(MODES)}, got {mode!r}")
    mode = mode.strip().lower()
    if mode == "bf16" and not onednn_available():
        raise ValueError("bf16 products need oneDNN's linear operator, which this PyTorch "
                         "lacks (or which failed its check) on this CPU")
    _state["mode"] = mode
    return mode


def get_products() -> str:
    """The mode :func:`set_products` set (or ``BOLTZKIT_PRODUCTS``, or ``"auto"``)."""
    if _state["mode"] is None:
        _state["mode"] = _env_mode()
    return _state["mode"]


def _linear():
    ops = getattr(torch.ops, "mkldnn", None)
    return getattr(ops, "_linear_pointwise", None) if ops is not None else None


def onednn_available() -> bool:
    """Whether oneDNN's float32 and bfloat16 linear operator exists here and agrees with
    ``torch.addmm`` on a check product (done once per process)."""
    if _state["onednn"] is None:
        _state["onednn"] = _self_check()
    return _state["onednn"]


def _self_check() -> bool:
    op = _linear()
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    try:
        g = torch.Generator().manual_seed(0)
        a = torch.randn(67, 129, generator=g)
        b = torch.randn(129, 35, generator=g)
        bias = torch.randn(35, generator=g)
        with torch.no_grad():
            ref = torch.addmm(bias.double(), a.double(), b.double())
            got = op(a, b.t(), bias, "none", [], "")
            got_t = op(a.t().contiguous().t(), b.t().contiguous(), None, "none", [], "")
            got_bf = op(a.bfloat16(), b.t().bfloat16(), None, "none", [], "").float()
        scale = float(ref.abs().max())
        return (got.dtype == torch.float32 and got.shape == ref.shape
                and float((got.double() - ref).abs().max()) < 1e-5 * scale
                and float((got_t.double() + bias.double() - ref).abs().max()) < 1e-5 * scale
                and float((got_bf.double() + bias.double() - ref).abs().max()) < 0.05 * scale)
    except Exception:  # any failure of a private operator: fall back to BLAS for good
        return False


def route(a: torch.Tensor, b: torch.Tensor, bias: Optional[torch.Tensor] = None, *,
          macs: Optional[int] = None) -> str:
    """The path :func:`addmm` takes for ``a @ b``: ``"onednn"``, ``"bf16"`` or ``"blas"``
    (``macs``: the multiply-adds of the whole product, when ``a @ b`` is one piece of it)."""
    mode = get_products()
    if mode == "blas" or a.device.type != "cpu" or a.dtype != torch.float32 \
            or b.dtype != torch.float32 or a.dim() != 2 or b.dim() != 2:
        return "blas"
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad
                                    or (bias is not None and bias.requires_grad)):
        return "blas"  # oneDNN's linear has no autograd formula
    if macs is None:
        macs = a.shape[0] * a.shape[1] * b.shape[1]
    if macs < MIN_MACS or not onednn_available():
        return "blas"
    return "bf16" if mode == "bf16" else "onednn"


def _dnn(a, b, bias, path):
    """``a @ b (+ bias)`` through oneDNN's linear, whose weight is ``(out, in)``: ``b.t()``."""
    op = _linear()
    if path == "bf16":
        out = op(a.bfloat16(), b.t().bfloat16(), None, "none", [], "").float()
        return out if bias is None else out.add_(bias)
    return op(a, b.t(), bias, "none", [], "")


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for ``a`` ``(n, k)`` and ``b`` ``(k, m)`` (either may be a transposed view)."""
    path = route(a, b)
    return torch.mm(a, b) if path == "blas" else _dnn(a, b, None, path)


def addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, alpha: float = 1.0
          ) -> torch.Tensor:
    """``bias + alpha * (a @ b)`` (``torch.addmm(bias, a, b, alpha=alpha)``): ``a`` ``(n, k)``,
    ``b`` ``(k, m)``, ``bias`` ``(m,)`` or ``(n, m)``; a new tensor."""
    path = route(a, b, bias)
    if path == "blas":
        return torch.addmm(bias, a, b, alpha=alpha)
    if bias.dim() == 1 and bias.dtype == torch.float32 and bias.shape[0] == b.shape[1]:
        if alpha == 1.0:
            return _dnn(a, b, bias, path)
        if abs(alpha) >= 2.0 ** -20:  # (bias / alpha + a b) alpha: the bias rides along
            return _dnn(a, b, bias / alpha, path).mul_(alpha)
    out = _dnn(a, b, None, path)
    if alpha != 1.0:
        out.mul_(alpha)
    return out.add_(bias)


def add_outer_(out: torch.Tensor, pairs: Sequence, alphas: Sequence[float], *,
               beta: float = 1.0) -> torch.Tensor:
    """In place ``out <- beta * out + sum_i alpha_i * a_iᵀ b_i`` for ``pairs`` ``[(a_i, b_i)]``,
    ``a_i`` ``(n_i, k)``, ``b_i`` ``(n_i, m)``, ``out`` ``(k, m)``; ``beta = 0`` ignores what
    ``out`` held (it may be uninitialised). On BLAS: one ``addmm_`` per pair, straight into
    ``out``. On oneDNN the pairs are stacked (the sum is ONE product over all rows, the
    ``alpha_i`` riding on the ``b_i``) and the result is added to ``out`` in one pass.
    Returns ``out``."""
    a0, b0 = pairs[0]
    n = sum(a.shape[0] for a, _ in pairs)
    path = route(a0.t(), b0, out, macs=n * a0.shape[1] * b0.shape[1])
    if path != "blas" and any(route(a.t(), b, macs=n * a.shape[1] * b.shape[1]) != path
                              for a, b in pairs[1:]):
        path = "blas"
    if path == "blas":
        for i, ((a, b), alpha) in enumerate(zip(pairs, alphas)):
            out.addmm_(a.t(), b, beta=beta if i == 0 else 1.0, alpha=alpha)
        return out
    # the stacked transposes, built contiguous ((k, n) and (m, n)): oneDNN's linear then reads
    # both operands in its preferred layout (measured: a third faster than transposed views)
    a_t = torch.cat([a.t() for a, _ in pairs], 1)
    b_t = torch.cat([(b * alpha if alpha != 1.0 else b).t() for (_, b), alpha in zip(pairs, alphas)],
                    1)
    g = _dnn(a_t, b_t.t(), None, path)
    if beta == 0.0:
        return out.copy_(g)
    if beta != 1.0:
        out.mul_(beta)
    return out.add_(g)
