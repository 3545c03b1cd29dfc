"""Weights -> ONNX -> (TensorRT) -> Triton model repository. Torch is imported only by the
modules that export (lama, inpainter, fallback, detector); prepare/repository/weights run without it."""
