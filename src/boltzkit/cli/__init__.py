"""The ``boltzkit`` command: parses arguments and calls the library; no logic of its own.

Each group of subcommands lives in its own module with a ``register(subparsers)`` function that
adds its parsers and sets ``func`` (called with the parsed arguments, returning an exit code).
Errors in the user's input (``ValueError`` and its subclasses, missing files) are printed as one
line, ``boltzkit: error: ...``, and the command exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

__all__ = ["main", "build_parser", "add_threads", "apply_threads"]

# modules under boltzkit.cli that contribute subcommands, in the order of `boltzkit --help`
COMMAND_MODULES = ["train", "rbm", "evaluate", "hopfield", "bm", "toy", "compare"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="boltzkit",
        description="Boltzmann machines: Hopfield nets, Boltzmann machines, RBMs, likelihoods.")
    parser.add_argument("--version", action="version", version=f"boltzkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    _record_options(parser)
    return parser


def _record_options(parser: argparse.ArgumentParser) -> None:
    """Give every (sub)command's namespace ``_options``: its options' destinations and flags,
    so that a library error naming an argument (``epochs: ...``) can be shown with the flag
    the user typed (``--epochs: ...``)."""
    options = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _record_options(child)
        elif action.option_strings and action.dest not in ("help", "version"):
            options[action.dest] = max(action.option_strings, key=len)
    parser.set_defaults(_options=options)


THREADS_HELP = ("torch's CPU threads for the command: a positive number, or auto (one thread for "
                "small models; for larger ones, as many as there are idle cores, measured at "
                "start) (default: auto)")


PRODUCTS_HELP = ("how the large CPU matrix products are computed: auto (oneDNN's float32 "
                 "product where this PyTorch has it, else BLAS), blas (PyTorch's torch.mm "
                 "always), or bf16 (bfloat16 operands with float32 accumulation: faster, "
                 "slightly less precise; weights and sampling stay float32) (default: auto)")


def add_threads(parser: argparse.ArgumentParser) -> None:
    """Give a command the CPU options: ``--threads N|auto`` (checked by :func:`main` before
    the command runs, applied by the command with :func:`apply_threads`) and ``--products
    auto|blas|bf16`` (set by :func:`main` for the command's duration)."""
    parser.add_argument("--threads", default="auto", metavar="N|auto", help=THREADS_HELP)
    parser.add_argument("--products", default="auto", choices=["auto", "blas", "bf16"],
                        help=PRODUCTS_HELP)


def apply_threads(args, work=None, device=None) -> None:
    """Set torch's CPU thread count for this process from ``args.threads`` (``auto``: the rule
    of :mod:`boltzkit._threads`, with ``work`` the multiply-adds of the command's typical matrix
    product); nothing for a ``device`` that is not the CPU."""
    from .._threads import set_threads

    if device is not None and getattr(device, "type", device) != "cpu":
        return
    set_threads(args.threads, work)


def needs_subcommand(parser: argparse.ArgumentParser, what: str = "a command"):
    """The ``func`` of a command group called without its subcommand: its help, then one
    error line naming the choices (exit status 2)."""
    def func(args) -> int:
        parser.print_help()
        choices = ", ".join(parser._subparsers._group_actions[0].choices)
        raise ValueError(f"expected {what}: {choices}")
    return func


def _name_option(message: str, args) -> str:
    """``message`` with a leading argument name replaced by the command's flag for it (through
    the command's ``_aliases`` where the library's name differs from the flag's)."""
    key, sep, rest = message.partition(": ")
    if not sep or not key.isidentifier():
        return message
    key = getattr(args, "_aliases", {}).get(key, key)
    flag = getattr(args, "_options", {}).get(key)
    return f"{flag}: {rest}" if flag else message


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that files being written are cleaned up."""


def _terminate(signum, frame):
    raise _Terminated


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        commands = ", ".join(parser._subparsers._group_actions[0].choices)
        print(f"boltzkit: error: expected a command: {commands}", file=sys.stderr)
        return 2
    # SIGTERM unwinds like Ctrl-C (training defers both to the next batch boundary itself)
    old = signal.signal(signal.SIGTERM, _terminate) \
        if threading.current_thread() is threading.main_thread() else None
    import torch

    # --threads sets torch's count for the command only: a caller of main() gets its own back
    threads_before = torch.get_num_threads()
    from .. import _products
    products_before = _products.get_products()
    try:
        if hasattr(args, "threads"):  # one line for a bad value, before any work
            from .._threads import parse_threads
            args.threads = parse_threads(args.threads, "--threads")
        if getattr(args, "products", None) is not None:
            try:
                _products.set_products(args.products)
            except ValueError as err:
                raise ValueError(f"--products: {err}") from None
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        print(f"boltzkit: error: {_name_option(str(err), args)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of the output went away (`| head`): nothing to say
        try:  # (and nothing more to write at exit)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141
    except OSError as err:  # the file system said no (a name too long, a full disk, ...)
        where = f"{err.filename}: " if err.filename else ""
        print(f"boltzkit: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except MemoryError:
        print("boltzkit: error: out of memory (ask for smaller sizes)", file=sys.stderr)
        return 2
    except RuntimeError as err:  # torch's allocators: a size no check foresaw
        text = str(err)
        if "allocate" not in text and "out of memory" not in text:
            raise
        said = next((part.strip() for part in text.split(":") if "tried to allocate" in part),
                    text.splitlines()[0])
        print(f"boltzkit: error: out of memory ({said}); ask for smaller sizes",
              file=sys.stderr)
        return 2
    except _Terminated:
        print("boltzkit: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("boltzkit: interrupted", file=sys.stderr)
        return 130
    finally:
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)
        _products.set_products(products_before)
        if old is not None:
            signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
