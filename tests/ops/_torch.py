"""The torch-side check of an op file: the fake-quantized model's output codes are the integer reference's."""
from __future__ import annotations

import numpy as np


def assert_codes_agree(m, g, x) -> np.ndarray:
    """Model.output_codes(x) == dmxgen.api.reference_outputs of graph g, bit for bit; returns them."""
    from dmxgen.api import reference_outputs

    ref = reference_outputs(g, m.quantize_input(x)).astype(np.int64)
    fq = m.output_codes(x).reshape(ref.shape)
    assert np.array_equal(ref, fq), f"{int((ref != fq).sum())} of {ref.size} codes differ"
    return ref


def calibrated(make, shape, config=None, seed: int = 0):
    """(a dmxgen.Model of make() transformed per `config` and calibrated on x, x): x is seeded randn(*shape)."""
    import torch

    import dmxgen

    torch.manual_seed(seed)
    net = make().eval()
    x = torch.randn(*shape)
    m = dmxgen.Model(net).transform(config)
    with m.calibrating():
        m(x)
    return m.eval(), x
