"""onnxruntime sessions as every model of ours runs them: on the CPU, on a given number of threads."""

from __future__ import annotations

import os

# onnxruntime ≥ 1.29 on Linux starts telemetry at import: it writes a device id and an offline
# event cache under ~/.cache/Microsoft and tries to upload. A school station must do neither
# (no local writes, no traffic but to storage), so opt out before onnxruntime is first imported:
# every model of ours is run through this module, the identity worker's ResNet as well.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("ORT_TELEMETRY_DISABLED", "1")


def cpu_session(graph: bytes, threads: int = 1):
    """An onnxruntime session for an ONNX graph held in memory."""
    import onnxruntime as ort  # imported here: only the processes that run a model pay for it

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: exported graphs' stale shape hints draw warnings
    # Idle onnxruntime threads spin waiting for work by default, burning the other core: with 2
    # threads about 2x the CPU for no gain in wall time, CPU the encoder and the tracker need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
