"""Encoded weights stored inside a .tflite file (`dmxgen compress`).

The dCSR paper's tool converts a model in place; here the encoded arrays of
the selected weight tensors go into metadata buffers named
`dmxgen.weights/<tensor index>`, so ordinary TFLite parsers still open the
file. With `strip_dense` the original dense buffers are emptied and the file
shrinks; only dmxgen can then run it (its frontend decodes the arrays back).

Each metadata buffer is MAGIC, a JSON header (format, op, shapes, array names,
dtypes, lengths, CRC32) and the raw arrays: nothing in it is ever executed.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from .. import codecs
from ..codecs import policy, report, view
from ..errors import DmxError
from ..ops import SPECS
from .tflite import OPERATORS

PREFIX = "dmxgen.weights/"
# TFLite operators whose weights `compress` may store encoded: those mapped to a kind with a weights input.
_OPS = {name: kinds[0] for name, (_, kinds) in OPERATORS.items() if SPECS[kinds[0]].weight_inputs}


MAGIC = b"DMXW1\0"


def serialize(enc: codecs.Encoded, op_kind: str, weight_shape: tuple[int, ...]) -> bytes:
    """MAGIC, a little-endian uint32 header length, a JSON header, then the raw arrays in order."""
    body = b"".join(np.ascontiguousarray(v).tobytes() for v in enc.arrays.values())
    header = {"format": enc.format, "op": op_kind, "shape": list(weight_shape), "matrix_shape": list(enc.shape),
              "arrays": [[k, v.dtype.str, int(v.size)] for k, v in enc.arrays.items()], "crc32": zlib.crc32(body)}
    head = json.dumps(header, separators=(",", ":")).encode()
    return MAGIC + len(head).to_bytes(4, "little") + head + body


def deserialize(data: bytes) -> tuple[codecs.Encoded, str, tuple[int, ...]]:
    """Rebuild and check the Encoded object; any inconsistency is a DmxError."""
    try:
        if not data.startswith(MAGIC):
            raise ValueError("bad magic")
        n = int.from_bytes(data[len(MAGIC):len(MAGIC) + 4], "little")
        pos = len(MAGIC) + 4
        h = json.loads(data[pos:pos + n])
        pos += n
        if zlib.crc32(data[pos:]) != h["crc32"]:
            raise ValueError("checksum mismatch")
        arrays = {}
        for name, dtype, size in h["arrays"]:
            dt = np.dtype(dtype)
            if dt.kind not in "iu":
                raise ValueError(f"array {name} has non-integer dtype {dtype}")
            end = pos + dt.itemsize * int(size)
            if end > len(data):
                raise ValueError("arrays run past the end of the buffer")
            arrays[name] = np.frombuffer(data[pos:end], dtype=dt).copy()
            pos = end
        fmt, op = str(h["format"]), str(h["op"])
        shape = tuple(int(d) for d in h["shape"])
        mshape = tuple(int(d) for d in h["matrix_shape"])
    except Exception as e:
        raise DmxError(f"a dmxgen weight buffer is corrupt ({type(e).__name__}: {e})") from None
    if fmt not in codecs.FORMATS:
        raise DmxError(f"a dmxgen weight buffer uses unknown format {fmt!r}")
    try:
        matrix = codecs.Encoded(fmt, mshape, arrays, 0).decode()
    except Exception as e:
        raise DmxError(f"a dmxgen {fmt} weight buffer does not decode ({type(e).__name__}: {e})") from None
    enc = codecs.encode(fmt, matrix)
    if enc.arrays.keys() != arrays.keys() or any(not np.array_equal(enc.arrays[k], arrays[k]) for k in arrays):
        raise DmxError(f"a dmxgen {fmt} weight buffer is not the canonical encoding of its matrix")
    return enc, op, shape


def read_packed(model) -> dict[int, tuple[codecs.Encoded, str, tuple[int, ...]]]:
    """Tensor index -> (encoded, op kind, weight shape) for a parsed `tflite.Model`."""
    out = {}
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        name = (md.Name() or b"").decode("utf-8", "replace")
        if not name.startswith(PREFIX):
            continue
        b = model.Buffers(md.Buffer())
        out[int(name[len(PREFIX):])] = deserialize(b.DataAsNumpy().tobytes())
    return out


def pack(src: Path, dst: Path, fmt: str = policy.COMPRESS.fmt, select: str = "paper",
         min_sparsity: float = policy.COMPRESS.min_sparsity, strip_dense: bool = False) -> list[dict]:
    """Write `dst`: `src` plus encoded weights of the selected tensors. Returns one row per tensor."""
    from ai_edge_litert import schema_py_generated as S  # the schema's object API, for writing
    import flatbuffers

    if fmt not in ("csr", "dcsr", "rle"):
        raise DmxError(f"compress stores a sparse format (csr, dcsr, rle), not {fmt!r}")
    buf = Path(src).read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise DmxError(f"{src}: not a TFLite flatbuffer (no 'TFL3' identifier in the header)")
    try:
        m = S.ModelT.InitFromPackedBuf(buf, 0)
    except Exception as e:
        raise DmxError(f"{src}: corrupt or truncated TFLite file ({type(e).__name__}: {e})") from None
    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    sg = m.subgraphs[0]
    m.metadata = [md for md in (m.metadata or []) if not (md.name or b"").decode().startswith(PREFIX)]
    rows = []
    for op in sg.operators:
        oc = m.operatorCodes[op.opcodeIndex]
        kind = _OPS.get(names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode)))
        if kind is None or len(op.inputs) < 2:
            continue
        tidx = int(op.inputs[1])
        t = sg.tensors[tidx]
        data = m.buffers[t.buffer].data if t.buffer else None
        if data is None or len(data) == 0:
            continue
        w = np.frombuffer(bytes(data), dtype=np.int8).reshape(t.shape)
        zeros = 1.0 - np.count_nonzero(w) / w.size
        if select == "paper":
            take = report.selected(kind, w)
        else:
            take = kind in policy.SPARSE_OPS and zeros >= min_sparsity
        if not take:
            continue
        enc = codecs.encode(fmt, view.as_matrix(kind, w))
        blob = S.BufferT()
        blob.data = np.frombuffer(serialize(enc, kind, tuple(w.shape)), np.uint8)
        m.buffers.append(blob)
        md = S.MetadataT()
        md.name = f"{PREFIX}{tidx}".encode()
        md.buffer = len(m.buffers) - 1
        m.metadata.append(md)
        if strip_dense:
            shared = sum(1 for x in sg.tensors if x.buffer == t.buffer)
            if shared == 1:
                m.buffers[t.buffer].data = None
        rows.append({"tensor": (t.name or b"").decode(), "op": kind, "shape": list(w.shape), "sparsity": zeros,
                     "dense": int(w.size), "encoded": enc.nbytes, "format": fmt})
    b = flatbuffers.Builder(len(buf) + 1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    Path(dst).write_bytes(bytes(b.Output()))
    return rows
