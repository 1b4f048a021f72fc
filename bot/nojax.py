"""Keep JAX out of the Rasa server: imported before TensorFlow, it saves about 96 MB per replica.

TensorFlow 2.12 imports `jax` at start-up only for TFLite's JAX converter
(tensorflow/lite/python/util.py: `try: from jax import xla_computation` ... `except ImportError`),
which Rasa never uses. A `None` entry in sys.modules makes that import fail as if JAX were not
installed (it stays installed: TensorFlow's package metadata requires it).
"""

from __future__ import annotations

import sys

if "jax" not in sys.modules:
    sys.modules["jax"] = None  # type: ignore[assignment]
