"""A PyTorch model file -> the integer Graph, without executing code from the file.

`dmxgen.save` writes a torch.export archive (.pt2) that also holds the
integer Graph as JSON (an "extra file"); this loader reads only that JSON, so
it needs neither torch nor unpickling. A pickled checkpoint (torch.save of a
module) is refused unless `trust_pickle=True`: unpickling runs whatever code
the file names. TorchScript archives are refused too (they hold pickles and
code). Nothing here imports torch unless a trusted pickle is loaded.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import DmxError
from ..graph import Graph
from .torch_io import ENTRY, loads

PICKLE_WHY = ("unpickling can execute arbitrary code, so dmxgen does not load pickles by default. "
              "Re-save the model with dmxgen.save(model, path, example_input), or pass --trust-pickle "
              "(trust_pickle=True) if you made this file yourself")


def load_torch(path: str | Path, trust_pickle: bool = False, **options) -> Graph:
    """Load a .pt2 written by dmxgen.save (or, with trust_pickle, a pickled dmxgen Model).

    Other options (e.g. `semantics`, which only TFLite models use) are ignored.
    """
    path = Path(path)
    if not path.exists():
        raise DmxError(f"{path}: no such file")
    with path.open("rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as e:
            raise DmxError(f"{path}: corrupt zip archive ({e})") from None
        with zf:
            names = zf.namelist()
            entry = next((n for n in names if n == ENTRY or n.endswith("/extra/" + ENTRY)), None)
            if entry is not None:
                graph, _meta = loads(zf.read(entry), source=str(path))
                graph.validate()
                return graph
            if any(n.endswith("/constants.pkl") or n.startswith("code/") or "/code/" in n for n in names):
                raise DmxError(f"{path}: a TorchScript archive; it is not supported (it holds pickles and "
                               "code); save the model with dmxgen.save(model, path, example_input)")
            if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
                return _pickled(path, trust_pickle)
            if any(n.endswith("models/model.json") or n.endswith("archive_format") for n in names):
                raise DmxError(f"{path}: a torch.export archive without dmxgen's quantization data; "
                               "save it with dmxgen.save(model, path, example_input)")
        raise DmxError(f"{path}: a zip archive that is neither a dmxgen .pt2 nor a PyTorch checkpoint")
    if head[:1] == b"\x80":
        return _pickled(path, trust_pickle)
    raise DmxError(f"{path}: not a PyTorch model file (neither a zip archive nor a pickle)")


def _pickled(path: Path, trust_pickle: bool) -> Graph:
    if not trust_pickle:
        raise DmxError(f"{path}: a pickled PyTorch checkpoint (torch.save); {PICKLE_WHY}")
    import torch

    from ..compress.model import Model
    from . import torch_graph  # noqa: F401  registers the builder obj.to_graph() below calls

    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise DmxError(f"{path}: cannot unpickle ({type(e).__name__}: {e})") from None
    if isinstance(obj, Model):
        return obj.to_graph()
    if isinstance(obj, torch.nn.Module):
        raise DmxError(f"{path}: a plain {type(obj).__name__} has no quantization; wrap it with "
                       "dmxgen.Model(net), transform, calibrate, and save it with dmxgen.save")
    raise DmxError(f"{path}: holds a {type(obj).__name__} (a state_dict has no model structure); save the "
                   "model with dmxgen.save(model, path, example_input)")
