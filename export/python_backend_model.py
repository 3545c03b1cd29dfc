"""Triton python-backend model that runs ``model.onnx`` beside it with onnxruntime.

Triton's onnxruntime backend only exists inside NVIDIA's container, so the embedded (CPU) model
repository serves the same ONNX files through this file, copied to ``<model>/<version>/model.py``
by ``export.repository``. Requests that Triton's dynamic batcher groups together are concatenated
along the batch axis and run as ONE onnxruntime call, then split back.
"""

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        path = Path(args["model_repository"]) / args["model_version"] / params.get("onnx_file", "model.onnx")
        options = ort.SessionOptions()
        threads = int(params.get("intra_op_threads", "0") or 0) or (os.cpu_count() or 1)
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]

    def execute(self, requests):
        try:
            per_request = [
                [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.input_names]
                for r in requests
            ]
            sizes = [inputs[0].shape[0] for inputs in per_request]
            feeds = {
                name: np.ascontiguousarray(np.concatenate([inputs[i] for inputs in per_request]))
                for i, name in enumerate(self.input_names)
            }
            outputs = self.session.run(self.output_names, feeds)
        except Exception as exc:  # noqa: BLE001 - reported to every caller in the batch
            error = pb_utils.TritonError(f"onnxruntime failed: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses, start = [], 0
        for size in sizes:
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(out[start : start + size]))
                for name, out in zip(self.output_names, outputs)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses

    def finalize(self):
        self.session = None
