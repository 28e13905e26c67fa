"""A faithful, fast PyTorch reproduction of AlexNet (Krizhevsky, Sutskever, Hinton 2012)."""

__version__ = "0.1.0"
