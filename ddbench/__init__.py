"""ddbench: an open benchmark suite for dataset distillation."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("ddbench")

__all__ = ["hookimpl", "__version__"]
