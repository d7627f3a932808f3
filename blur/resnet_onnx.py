"""dlib's face-recognition ResNet, read from its pinned model file and run by onnxruntime.

dlib's own forward pass (`dlib-bin` is built without BLAS) cost 100-150 ms a face chip on one
core here and held the GIL throughout. The network is small (29 convolutions, about 0.35 GMAC
a 150×150 chip), so this module reads the weights out of the very file dlib loads
(`dlib_face_recognition_resnet_model_v1.dat`, pinned by SHA-256 in `blur.identity`), builds the
same network as an ONNX graph in memory, and runs it with onnxruntime: about 8 ms a chip, and
several chips per call. The embeddings equal dlib's to within 1e-6 (a test compares them on the
registry faces), so dlib's thresholds and the whole gallery keep their meaning.

The network is the one of dlib's `dnn_face_recognition_ex.cpp`:

    input_rgb_image_sized<150> → con<32,7,7,2,2> → affine → relu → max_pool<3,3,2,2>
    → 3 × ares<32> → ares_down<64>, 3 × ares<64> → ares_down<128>, 2 × ares<128>
    → ares_down<256>, 2 × ares<256> → ares_down<256> → avg_pool_everything → fc_no_bias<128>

where `ares` is relu(x + affine(con(relu(affine(con(x)))))) and `ares_down` adds the 2×2 average
pool of x to a stride-2 block. Where the two sides of a sum differ in size (more channels; at
8×8 the strided convolution gives 3×3 against the pool's 4×4), dlib pads the smaller with zeros
at the end, and so does the graph. dlib pads a convolution or pool only when its stride is 1.

The file format is dlib's serialization: a layer stack is written outside in (each layer's
version, then its sub-network), so the file holds every layer's version first and then the
layers' parameters from the input up. Tensors are little-endian float32 blocks; other numbers
are dlib's compact integers and (mantissa, exponent) floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from blur.errors import ModelError

CHIP = 150
# input_rgb_image_sized's channel means, as the model file holds them; pixels are (v - mean) / 256
_SCALE = 1 / 256


class _Reader:
    """dlib's serialization primitives over a bytes object."""

    def __init__(self, data: bytes):
        self.data = data
        self.at = 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise ModelError("The face-recognition model file ends too early.")
        value = self.data[self.at]
        self.at += 1
        return value

    def int(self) -> int:
        control = self.byte()
        size = control & 0x0F
        if size > 8 or self.at + size > len(self.data):
            raise ModelError("The face-recognition model file holds a malformed integer.")
        value = int.from_bytes(self.data[self.at : self.at + size], "little")
        self.at += size
        return -value if control & 0x80 else value

    def text(self) -> str:
        size = self.int()
        if not 0 <= size <= 64:
            raise ModelError("The face-recognition model file holds a malformed layer name.")
        value = self.data[self.at : self.at + size].decode("ascii", "replace")
        self.at += size
        return value

    def real(self) -> float:
        mantissa = self.int()
        return mantissa * 2.0 ** self.int()

    def flag(self) -> bool:
        value = chr(self.byte())
        if value not in "01":
            raise ModelError("The face-recognition model file holds a malformed flag.")
        return value == "1"

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise ModelError("The face-recognition model file holds a tensor of an unknown version.")
        dims = [self.int() for _ in range(4)]
        count = int(np.prod(dims))
        if count < 0 or self.at + 4 * count > len(self.data):
            raise ModelError("The face-recognition model file holds a truncated tensor.")
        values = np.frombuffer(self.data, "<f4", count, self.at).astype(np.float32)
        self.at += 4 * count
        return values.reshape(dims)

    def alias(self) -> tuple[int, ...]:
        if self.int() != 1:
            raise ModelError("The face-recognition model file holds a tensor view of an unknown version.")
        return tuple(self.int() for _ in range(4))


@dataclass
class _Layer:
    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc
    params: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    shape: tuple[int, ...] = ()  # con: (filters, channels, rows, cols); fc: (inputs, outputs)
    window: tuple[int, int] = (0, 0)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)


def _details(r: _Reader) -> _Layer:
    name = r.text()
    if name in ("con_4", "con_5", "con_6"):
        params = r.tensor()
        filters, rows, cols = r.int(), r.int(), r.int()
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        shape, _biases = r.alias(), r.alias()
        for _ in range(4):
            r.real()  # learning-rate and weight-decay multipliers
        if name in ("con_5", "con_6") and not r.flag():
            raise ModelError("The face-recognition model has a convolution without bias; this reader expects one.")
        if name == "con_6":
            r.flag()
        if shape[0] != filters or shape[2:] != (rows, cols):
            raise ModelError("The face-recognition model's convolution shapes disagree.")
        return _Layer("con", params.reshape(-1), shape, (rows, cols), stride, padding)
    if name in ("affine_", "affine_2"):
        params = r.tensor()
        r.alias(), r.alias()
        if r.int() != 0:  # CONV_MODE: one gamma and beta per channel
            raise ModelError("The face-recognition model has an affine layer of an unexpected mode.")
        if name == "affine_2" and r.flag():
            raise ModelError("The face-recognition model has a disabled affine layer.")
        return _Layer("affine", params.reshape(-1))
    if name in ("relu_", "relu_2"):
        if name == "relu_2" and r.flag():
            raise ModelError("The face-recognition model has a disabled relu layer.")
        return _Layer("relu")
    if name in ("max_pool_2", "avg_pool_2"):
        window = (r.int(), r.int())
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        return _Layer(name[:8], window=window, stride=stride, padding=padding)
    if name == "add_prev_":
        return _Layer("add_prev")
    if name in ("fc_2", "fc_3"):
        outputs, inputs = r.int(), r.int()
        params = r.tensor()
        r.alias(), r.alias()
        if r.int() != 1:  # FC_NO_BIAS
            raise ModelError("The face-recognition model's last layer has a bias; this reader expects none.")
        for _ in range(4):
            r.real()
        if name == "fc_3":
            r.flag()
        return _Layer("fc", params.reshape(-1), (inputs, outputs))
    raise ModelError(f"The face-recognition model holds a layer {name!r} this reader does not know.")


def read_dlib_resnet(data: bytes) -> tuple[tuple[float, float, float], list[_Layer]]:
    """The input layer's channel means and the computing layers, from the input up."""
    r = _Reader(data)
    if r.int() != 1 or r.text() != "loss_metric_2":
        raise ModelError("The face-recognition model file does not start with dlib's metric-learning loss.")
    r.real(), r.real()  # margin and distance threshold (training only)
    versions = []
    while True:  # each layer's version, outside in; the innermost one (version 3) holds the input
        version = r.int()
        versions.append(version)
        if version == 3:
            break
        if version not in (1, 2) or len(versions) > 1000:
            raise ModelError("The face-recognition model file has an unexpected layer structure.")
    if r.text() != "input_rgb_image_sized":
        raise ModelError("The face-recognition model does not take a sized RGB image.")
    means = (r.real(), r.real(), r.real())
    if (r.int(), r.int()) != (CHIP, CHIP):
        raise ModelError(f"The face-recognition model does not take {CHIP}×{CHIP} chips.")
    layers = [_details(r)]
    for _ in range(3):
        r.flag()
    for _ in range(3):
        r.tensor()  # gradients and cached outputs: empty in a saved model
    r.int()  # sample expansion factor
    for version in reversed(versions[:-1]):
        if version == 1:  # a tag or skip layer: no parameters of its own
            continue
        layers.append(_details(r))
        for _ in range(3):
            r.flag()
        for _ in range(3 if version == 2 else 2):
            r.tensor()
    if r.at != len(data):
        raise ModelError("The face-recognition model file has data after its last layer.")
    return means, layers


def build_onnx(means: tuple[float, float, float], layers: list[_Layer]) -> bytes:
    """The ONNX graph of the network: uint8 chips (n, 150, 150, 3) RGB → embeddings (n, 128)."""
    from onnx import TensorProto, checker, helper, numpy_helper

    nodes, weights = [], []
    todo = iter(layers)
    counter = [0]

    def name(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    def constant(value: np.ndarray, prefix: str) -> str:
        key = name(prefix)
        weights.append(numpy_helper.from_array(value, key))
        return key

    def node(op: str, inputs: list[str], **attributes) -> str:
        out = name(op.lower())
        nodes.append(helper.make_node(op, inputs, [out], **attributes))
        return out

    def take(kind: str) -> _Layer:
        layer = next(todo, None)
        if layer is None or layer.kind != kind:
            found = layer.kind if layer else "the end"
            raise ModelError(f"The face-recognition model has {found} where this reader expects {kind}.")
        return layer

    def out_size(size: int, window: int, stride: int, pad: int) -> int:
        return 1 + (size + 2 * pad - window) // stride

    def conv_affine(x: str, size: int) -> tuple[str, int, int]:
        """A convolution and the affine (frozen batch-norm) layer after it, folded into one."""
        con, affine = take("con"), take("affine")
        filters, channels, rows, cols = con.shape
        n = filters * channels * rows * cols
        w, b = con.params[:n].reshape(con.shape), con.params[n : n + filters]
        gamma, beta = affine.params[:filters], affine.params[filters : 2 * filters]
        w = (w * gamma[:, None, None, None]).astype(np.float32)
        b = (b * gamma + beta).astype(np.float32)
        (py, px), (sy, sx) = con.padding, con.stride
        y = node("Conv", [x, constant(w, "w"), constant(b, "b")], kernel_shape=[rows, cols],
                 strides=[sy, sx], pads=[py, px, py, px])
        return y, filters, out_size(size, rows, sy, py)

    def pool(x: str, kind: str, size: int) -> tuple[str, int]:
        layer = take(kind)
        (py, px), (sy, sx) = layer.padding, layer.stride
        op = "MaxPool" if kind == "max_pool" else "AveragePool"
        y = node(op, [x], kernel_shape=list(layer.window), strides=[sy, sx], pads=[py, px, py, px])
        return y, out_size(size, layer.window[0], sy, py)

    def padded(x: str, channels: int, size: int, to_channels: int, to_size: int) -> str:
        if (channels, size) == (to_channels, to_size):
            return x
        pads = np.array([0, 0, 0, 0, 0, to_channels - channels, to_size - size, to_size - size], np.int64)
        return node("Pad", [x, constant(pads, "pads")])

    def add(a: str, ca: int, sa: int, b: str, cb: int, sb: int) -> tuple[str, int, int]:
        take("add_prev")
        c, s = max(ca, cb), max(sa, sb)
        return node("Add", [padded(a, ca, sa, c, s), padded(b, cb, sb, c, s)]), c, s

    def block(x: str, size: int) -> tuple[str, int, int]:
        y, c, s = conv_affine(x, size)
        y = node("Relu", [y])
        take("relu")
        return conv_affine(y, s)

    def ares(x: str, channels: int, size: int) -> tuple[str, int, int]:
        y, c, s = block(x, size)
        y, c, s = add(y, c, s, x, channels, size)
        take("relu")
        return node("Relu", [y]), c, s

    def ares_down(x: str, channels: int, size: int) -> tuple[str, int, int]:
        y, c, s = block(x, size)
        p, ps = pool(x, "avg_pool", size)
        y, c, s = add(p, channels, ps, y, c, s)
        take("relu")
        return node("Relu", [y]), c, s

    x = node("Cast", ["chip"], to=TensorProto.FLOAT)
    x = node("Transpose", [x], perm=[0, 3, 1, 2])
    x = node("Sub", [x, constant(np.array(means, np.float32).reshape(1, 3, 1, 1), "means")])
    x = node("Mul", [x, constant(np.array(_SCALE, np.float32), "scale")])
    x, c, s = conv_affine(x, CHIP)
    take("relu")
    x = node("Relu", [x])
    x, s = pool(x, "max_pool", s)
    for down, repeats in ((False, 3), (True, 3), (True, 2), (True, 2), (True, 0)):
        if down:
            x, c, s = ares_down(x, c, s)
        for _ in range(repeats):
            x, c, s = ares(x, c, s)
    everything = take("avg_pool")
    if everything.window != (0, 0):
        raise ModelError("The face-recognition model does not end with a global average pool.")
    x = node("Flatten", [node("GlobalAveragePool", [x])])
    fc = take("fc")
    inputs, outputs = fc.shape
    if inputs != c:
        raise ModelError("The face-recognition model's last layer does not fit the layers before it.")
    matrix = fc.params[: inputs * outputs].reshape(inputs, outputs)
    nodes.append(helper.make_node("MatMul", [x, constant(matrix, "fc")], ["embedding"]))
    if next(todo, None) is not None:
        raise ModelError("The face-recognition model has layers after its last one.")
    graph = helper.make_graph(
        nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chip", TensorProto.UINT8, ["n", CHIP, CHIP, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", outputs])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    checker.check_model(model)
    return model.SerializeToString()


class ResNetEmbedder:
    """Chips → 128-d embeddings with dlib's ResNet on onnxruntime, on `threads` threads."""

    def __init__(self, model_file_bytes: bytes, threads: int = 1):
        from blur.sessions import cpu_session

        self._session = cpu_session(build_onnx(*read_dlib_resnet(model_file_bytes)), threads)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """(n, 150, 150, 3) uint8 RGB chips → (n, 128) float32 embeddings."""
        chips = np.ascontiguousarray(chips, dtype=np.uint8)
        if chips.ndim != 4 or chips.shape[1:] != (CHIP, CHIP, 3):
            raise ValueError(f"Face chips are n×{CHIP}×{CHIP}×3 uint8, not {chips.shape}.")
        return self._session.run(None, {"chip": chips})[0]
