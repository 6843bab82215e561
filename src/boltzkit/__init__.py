"""boltzkit: Boltzmann machines, the whole family, correct, fast and pleasant.

Layers (data flows one way): data -> units/models -> samplers -> training -> evaluation -> reports.
"""

from .data import Preparation
from ._products import get_products, set_products
from ._threads import set_threads
from .io import load, save
from .models import DBM, DBN, RBM, Autoencoder, BoltzmannMachine, ConvRBM, Hopfield
from .units import Bernoulli, Gaussian, Softmax, Spin, get_units

__version__ = "0.1.0"

__all__ = ["RBM", "BoltzmannMachine", "save", "load", "Bernoulli", "Spin", "Gaussian", "Softmax",
           "get_units", "Hopfield", "ConvRBM", "DBM", "DBN", "Preparation", "set_threads",
           "set_products", "get_products", "Autoencoder", "__version__"]
