"""UNIDIRECTIONAL_SEQUENCE_LSTM: its options here, the gates and state in frontends/tflite_lstm.py."""
from __future__ import annotations

import tflite

from ..tflite_registry import _ACTNAME, tflite_op


# optional inputs lie among the first 20 (CIFG, peephole, projection): read_lstm counts them
@tflite_op("UNIDIRECTIONAL_SEQUENCE_LSTM", "lstm", inputs=(1, 24))
def op_unidirectional_sequence_lstm(reader, op, ins, outs):
    from ..tflite_lstm import read_lstm

    o = reader.options(op, tflite.UnidirectionalSequenceLSTMOptions, required=True)
    return read_lstm(reader, op, ins, outs, o, _ACTNAME.get(o.FusedActivationFunction(), "?"))
