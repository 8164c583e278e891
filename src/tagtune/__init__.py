"""tagtune: build concept-labelled text-to-music datasets (tags -> captions -> audio).

This module holds the version only, so that ``import tagtune`` and ``tagtune --help``
stay instant; every stage imports its heavy dependencies lazily.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
