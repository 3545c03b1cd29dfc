"""Weights -> ONNX -> (TensorRT) -> Triton model repository. Torch is imported only by the
modules that export (lama, inpainter, fallback, detector); prepare/repository/weights run without it."""

import os as _os

# Ultralytics (imported lazily by detector/train_detector) pip-installs missing extras at run time
# unless told not to: never here (offline machines; an install could pull numpy 2 and break the
# Triton python backend).
_os.environ.setdefault("YOLO_AUTOINSTALL", "false")
