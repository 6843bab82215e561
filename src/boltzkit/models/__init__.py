"""Models: parameters and energies only (``torch.nn.Module``); no loops, no optimisers.

``MODEL_CLASSES`` maps the name stored in a model file to its class; every model class has
``config() -> dict`` and ``from_config(dict)`` so that :func:`boltzkit.save` / :func:`boltzkit.load`
can round-trip it without pickle.
"""

from .boltzmann import BoltzmannMachine
from .hopfield import Hopfield
from .rbm import RBM

MODEL_CLASSES = {"RBM": RBM, "BoltzmannMachine": BoltzmannMachine,
                 "Hopfield": Hopfield}

__all__ = ["RBM", "BoltzmannMachine", "Hopfield", "MODEL_CLASSES"]
