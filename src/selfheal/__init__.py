"""selfheal: a sentiment classifier that knows when it is unsure and heals itself."""

__version__ = "0.1.0"
