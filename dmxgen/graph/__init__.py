"""The integer graph: the one place frontends and backends meet."""
from .graph import Graph
from .op import OP_KINDS, Op
from .tensor import QuantParams, Tensor

__all__ = ["Graph", "Op", "OP_KINDS", "QuantParams", "Tensor"]
