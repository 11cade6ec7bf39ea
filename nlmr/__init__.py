"""nlmr: the Nordic Language Model Repository.

The package is a typed library with a thin click CLI on top (``nlmr.cli``).
Importing ``nlmr`` is cheap: heavy dependencies load inside the functions that
need them, so ``nlmr --help`` stays instant on a login node.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
