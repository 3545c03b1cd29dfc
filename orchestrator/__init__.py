"""Sora watermark removal service: FastAPI orchestrator in front of NVIDIA Triton."""

__version__ = "0.1.0"
