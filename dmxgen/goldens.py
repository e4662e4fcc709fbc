"""Run a .tflite file through a TFLite interpreter to get golden outputs.

`tflite` uses LiteRT (ai-edge-litert) or, where that is what is installed,
tflite-runtime, always with TFLite's reference kernels (BUILTIN_REF): the
default optimized path can differ by a few LSB. `tflm` uses TFLite Micro's
Python interpreter, with an arena sized from the model (tflm_arena_size).

An interpreter can take its process down on a hostile model (LiteRT segfaults
in set_tensor when a constant is listed as an input, aborts on some scales):
with `isolate=True` (what `dmxgen verify` uses) the run happens in a
persistent child process (GoldenWorker), and a crash there is one DmxError.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import DmxError

GOLDENS = ("tflite", "tflm")
TFLM_ARENA_CAP = 1 << 30  # doubling stops here: past it the model does not fit any MCU anyway
_ARENA_SHORT = re.compile(r"Requested: \d+, available \d+")  # how TFLM's allocators report a full arena

# bytes per element of each TFLite TensorType (schema enum value); unknown types count 8
_ITEMSIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 17: 1,
             18: 2, 19: 1, 20: 1, 21: 1, 22: 1}


def _tflite_interpreter(path: Path, preserve_all: bool):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter, OpResolverType
        except ImportError:
            raise DmxError("no TFLite interpreter: install ai-edge-litert (or tflite-runtime)") from None
    return Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                       experimental_preserve_all_tensors=preserve_all)


def run_golden(path: str | Path, inputs: list[np.ndarray], golden: str = "tflite",
               n_outputs: int = 1, isolate: bool = False) -> list[np.ndarray]:
    """Run one set of inputs (graph input order); return outputs in graph output order."""
    return run_golden_layers(path, inputs, golden, n_outputs, layers=False, isolate=isolate)[0]


def run_golden_layers(path: str | Path, inputs: list[np.ndarray], golden: str = "tflite", n_outputs: int = 1,
                      layers: bool = True, isolate: bool = False) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """One run: the outputs, and with `layers` (LiteRT only) every tensor's value by TFLite tensor index.
    With `isolate` the interpreter runs in the golden worker process, so a crash in it is a DmxError."""
    if isolate:
        return _worker().run(Path(path), [np.asarray(x) for x in inputs], golden, n_outputs, layers)
    try:
        return _run_golden(Path(path), inputs, golden, n_outputs, layers)
    except DmxError:
        raise
    except (RuntimeError, ValueError) as e:
        raise DmxError(f"{path}: the {golden} interpreter cannot run this model: {short_reason(e)}"
                       f"{_stripped_hint(e)}") from None


def short_reason(e: Exception) -> str:
    """The first two messages of an interpreter error, one per line or glued together: LiteRT
    glues one message per bad tensor into a single string (1,300 characters for tflite-micro's
    person_detect); say how many more there were."""
    pieces = re.split(r"\n|(?<=[a-z0-9)\]])\.(?=[A-Za-z_]\w* )", str(e))  # not in "conv.cc:355"
    parts = [p for p in dict.fromkeys(" ".join(p.split()).rstrip(".") for p in pieces) if p]
    if not parts:
        return type(e).__name__
    first = "; ".join(parts[:2])
    if len(first) > 160:
        first = first[:157] + "..."
    return first + (f"; {len(parts) - 2} more like it" if len(parts) > 2 else "")


def _stripped_hint(e: Exception) -> str:
    if "lacks data" in str(e):
        return " (its dense weights were stripped by `dmxgen compress --strip-dense`; verify the original model)"
    return ""


def _run_golden(path: Path, inputs: list[np.ndarray], golden: str, n_outputs: int,
                layers: bool) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    if golden == "tflite":
        it = _load_litert(path, layers)
        for d, x in zip(it.get_input_details(), inputs):
            it.set_tensor(d["index"], np.asarray(x, dtype=d["dtype"]).reshape(d["shape"]))
        it.invoke()
        outputs = [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]
        every = {}
        for d in it.get_tensor_details() if layers else ():
            try:
                every[d["index"]] = it.get_tensor(d["index"]).copy()
            except ValueError:  # tensors without a buffer (e.g. optional inputs)
                pass
        return outputs, every
    if golden == "tflm":
        it = _load_tflm(path)
        messages = []
        try:
            with _native_stderr(messages):
                for i, x in enumerate(inputs):
                    it.set_input(np.asarray(x), i)
                it.invoke()
        except RuntimeError as e:
            raise DmxError(f"{path}: TFLite Micro cannot run this model: {_tflm_reason(e, messages)}") from None
        return [it.get_output(i).copy() for i in range(n_outputs)], {}
    raise DmxError(f"unknown golden {golden!r}; choose one of {', '.join(GOLDENS)}")


def _load_litert(path: Path, preserve_all: bool):
    """A LiteRT interpreter with its tensors allocated; a model it refuses is one short line."""
    try:
        it = _tflite_interpreter(path, preserve_all)
        it.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        if _stripped_hint(e):
            raise
        raise DmxError(f"{path}: LiteRT cannot load this model ({short_reason(e)}); try --golden tflm") from None
    return it


def _load_tflm(path: Path):
    """TFLM's interpreter with an arena that fits: the computed bound, doubled on an allocation
    failure up to TFLM_ARENA_CAP. (TFLM's own default, 10 x the file size, is too small for
    models whose activations outweigh their weights, e.g. a two-input ADD.)"""
    try:
        from tflite_micro import runtime
    except ImportError:
        raise DmxError("--golden tflm needs the tflite-micro package (pip install tflite-micro)") from None
    data = path.read_bytes()
    size = tflm_arena_size(data)
    while True:
        messages = []
        try:
            with _native_stderr(messages):
                return runtime.Interpreter.from_bytes(data, arena_size=size)
        except RuntimeError as e:
            full = [line.strip() for line in "".join(messages).splitlines() if _ARENA_SHORT.search(line)]
            if not full:
                raise DmxError(f"{path}: TFLite Micro cannot load this model: {_tflm_reason(e, messages)}") from None
            if size >= TFLM_ARENA_CAP:
                raise DmxError(f"{path}: TFLite Micro cannot load this model in an arena of {size:,} bytes: "
                               f"{full[0]}") from None
            size = min(2 * size, TFLM_ARENA_CAP)


def tflm_arena_size(data: bytes) -> int:
    """An arena TFLM can allocate this model in: every non-constant tensor unshared (16-byte aligned),
    bookkeeping per tensor and per operator, plus TFLM's own 10 x the file size for what kernels
    derive from the weights (per-channel multipliers, unpacked INT4)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(data, 0)
    total = 10 * len(data) + 16 * 1024
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        total += 512 * sg.OperatorsLength()
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            total += 256
            if _is_constant(model, t) and not t.IsVariable():
                continue
            shape = t.ShapeAsNumpy() if t.ShapeLength() else np.ones(1, np.int64)
            n = int(np.prod(np.abs(shape.astype(np.int64)))) * _ITEMSIZE.get(t.Type(), 8)
            total += (n + 15) // 16 * 16
    return int(min(total, TFLM_ARENA_CAP))


def _is_constant(model, t) -> bool:
    if t.ExternalBuffer() > 0:
        return True
    b = t.Buffer()
    if not 0 < b < model.BuffersLength():
        return False
    buf = model.Buffers(b)
    return buf.DataLength() > 0 or buf.Offset() > 1


def _tflm_reason(e: Exception, messages: list[str]) -> str:
    """TFLM's own words (it prints them to stderr) rather than the wrapper's generic exception."""
    printed = [line.strip() for m in messages for line in m.splitlines() if line.strip()]
    return printed[-1] if printed else short_reason(e)


@contextmanager
def _native_stderr(messages: list[str]):
    """Catch what native code prints on file descriptor 2 (TFLM logs its errors there), so that
    an error stays one line; the text is appended to `messages`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            ctypes.CDLL(None).fflush(None)
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            messages.append(tmp.read().decode("utf-8", "replace"))


# -- the isolated golden: one persistent child process, restarted after a crash -------------------

GOLDEN_TIMEOUT = 600.0  # seconds one interpreter run may take in the worker before it is killed
_WORKER: GoldenWorker | None = None


def _worker() -> GoldenWorker:
    global _WORKER
    if _WORKER is None or not _WORKER.alive():
        if _WORKER is not None:
            _WORKER.close()
        else:
            atexit.register(lambda: _WORKER.close())
        _WORKER = GoldenWorker()
    return _WORKER


class GoldenWorker:
    """A child Python that runs golden interpreters on request (pickles over its stdin/stdout).

    One child serves every run of a process, so isolation costs one start-up, not one per input.
    Its stderr goes to a file that is read only to explain a crash, so the interpreters' native
    logging never reaches the user."""

    def __init__(self):
        self.log = tempfile.TemporaryFile()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[1])] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        self.proc = subprocess.Popen([sys.executable, "-c", "from dmxgen.goldens import serve; serve()"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
                                     start_new_session=True)  # a Ctrl-C reaches dmxgen, which then ends it

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, path: Path, inputs, golden, n_outputs, layers):
        self.log.seek(0)
        self.log.truncate()
        try:
            pickle.dump((str(path), inputs, golden, n_outputs, layers), self.proc.stdin)
            self.proc.stdin.flush()
            status, value = _read_reply(self.proc)
        except TimeoutError:
            self.proc.kill()
            self.proc.wait()
            raise DmxError(f"{path}: the TFLite interpreter gave no result within {GOLDEN_TIMEOUT:g} s on this "
                           "model; it was stopped") from None
        except (EOFError, OSError, pickle.UnpicklingError):
            raise DmxError(f"{path}: the TFLite interpreter crashed on this model: {self._death()}") from None
        except BaseException:  # Ctrl-C (or an alarm) mid-run: a late reply must not answer the next request
            self.proc.kill()
            raise
        if status == "error":
            raise DmxError(value)
        return value

    def _death(self) -> str:
        """Why the child stopped: its signal or exit status, and the last line it printed."""
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # its pipe broke but it lives on: end it
            self.proc.kill()
            rc = self.proc.wait()
        try:
            why = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"it exited with status {rc}"
        except ValueError:
            why = f"killed by signal {-rc}"
        self.log.seek(0)
        printed = [line.strip() for line in self.log.read().decode("utf-8", "replace").splitlines() if line.strip()]
        return why + (f" ({printed[-1][:160]})" if printed else "")

    def close(self) -> None:
        """End the child (closing its stdin ends its loop) and release the pipes and the log."""
        try:
            self.proc.stdin.close()
        except OSError:  # the child died with data unread
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


def _read_reply(proc):
    """The worker's pickled reply, or TimeoutError after GOLDEN_TIMEOUT seconds without one."""
    import select

    ready, _, _ = select.select([proc.stdout], [], [], GOLDEN_TIMEOUT)
    if not ready:
        raise TimeoutError
    return pickle.load(proc.stdout)


def serve() -> None:
    """The worker's loop: read a request from stdin, reply on stdout, until stdin closes.
    File descriptor 1 is moved aside so native code that prints cannot corrupt the replies."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    inp = sys.stdin.buffer
    while True:
        try:
            path, inputs, golden, n_outputs, layers = pickle.load(inp)
        except EOFError:
            return
        try:
            reply = ("ok", run_golden_layers(path, inputs, golden, n_outputs, layers))
        except DmxError as e:
            reply = ("error", str(e))
        except Exception as e:  # noqa: BLE001 - anything else would be a bug: report it in one line
            reply = ("error", f"{path}: the {golden} interpreter failed: {type(e).__name__}: {short_reason(e)}")
        pickle.dump(reply, out)
        out.flush()
