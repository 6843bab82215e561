"""The ``boltzkit`` command: parses arguments and calls the library; no logic of its own.

Each group of subcommands lives in its own module with a ``register(subparsers)`` function that
adds its parsers and sets ``func`` (called with the parsed arguments, returning an exit code).
Errors in the user's input (``ValueError`` and its subclasses, missing files) are printed as one
line, ``boltzkit: error: ...``, and the command exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

__all__ = ["main", "build_parser"]

# modules under boltzkit.cli that contribute subcommands, in the order of `boltzkit --help`
COMMAND_MODULES = ["train", "rbm", "evaluate", "hopfield", "bm", "toy"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="boltzkit",
        description="Boltzmann machines: Hopfield nets, Boltzmann machines, RBMs, likelihoods.")
    parser.add_argument("--version", action="version", version=f"boltzkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that files being written are cleaned up."""


def _terminate(signum, frame):
    raise _Terminated


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # SIGTERM unwinds like Ctrl-C (training defers both to the next batch boundary itself)
    old = signal.signal(signal.SIGTERM, _terminate) \
        if threading.current_thread() is threading.main_thread() else None
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        print(f"boltzkit: error: {err}", file=sys.stderr)
        return 2
    except _Terminated:
        print("boltzkit: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("boltzkit: interrupted", file=sys.stderr)
        return 130
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
