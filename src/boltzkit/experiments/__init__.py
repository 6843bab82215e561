"""Classic experiments as library functions (the command line only parses and prints).

Each experiment lives in its own module (for example :mod:`boltzkit.experiments.hopfield`,
:mod:`boltzkit.experiments.toy`) and is imported from there; this package imports nothing on its own,
so that one experiment's dependencies never load with another's.
"""
