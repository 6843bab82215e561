"""Models: parameters and energies only (``torch.nn.Module``); no loops, no optimisers.

``MODEL_CLASSES`` maps the name stored in a model file to its class; every model class has
``config() -> dict`` and ``from_config(dict)`` so that :func:`boltzkit.save` / :func:`boltzkit.load`
can round-trip it without pickle, and, so that a corrupt or hostile file is refused before it
costs anything, ``tensor_shapes(config)`` (the shapes a configuration implies, checked against
the file's header before the model is built) and ``check_tensors(state_dict)`` (the structure
a file can break, such as symmetric weights; ``validate()`` runs it on a model in memory).
"""

from .autoencoder import Autoencoder
from .boltzmann import BoltzmannMachine
from .dbm import DBM
from .dbn import DBN
from .conv_rbm import ConvRBM
from .hopfield import Hopfield
from .rbm import RBM

MODEL_CLASSES = {"RBM": RBM, "BoltzmannMachine": BoltzmannMachine,
                 "Hopfield": Hopfield, "ConvRBM": ConvRBM, "DBM": DBM, "DBN": DBN,
                 # not a Boltzmann machine (trained by backprop), saved and loaded the same way
                 "Autoencoder": Autoencoder}

__all__ = ["RBM", "BoltzmannMachine", "Hopfield", "DBM", "DBN", "ConvRBM", "Autoencoder",
           "MODEL_CLASSES"]
