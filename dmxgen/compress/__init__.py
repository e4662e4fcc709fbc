"""PyTorch-side compression: formats, sparsity masks, lookup-table activations,
calibration, and the Model / transform(config) API (see docs/compression.md)."""
from .affine import Affine
from .aware import aware
from .config import LayerConfig, load_config
from .functions import register_function
from .model import Model

__all__ = ["Affine", "aware", "LayerConfig", "load_config", "Model", "register_function"]
