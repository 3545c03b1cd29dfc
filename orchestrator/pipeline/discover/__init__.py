"""Find static semi-transparent overlays from the video itself, without a trained template.

An overlay holds still at a place while the picture moves, then (for the Sora mark) jumps: the
same matte leaves one place and arrives at another in a frame or two. ``Discoverer`` watches
small copies of pass 1's frames and returns a ``Discovery``: the picture area (black bars) and
the positions and visits of what it confirmed, as the detector path's ``boxes.Timeline``.
"""

from orchestrator.pipeline.discover.core import Discoverer
from orchestrator.pipeline.discover.result import Discovery, FoundPosition
from orchestrator.pipeline.discover.fuse import Fused, FusedPosition, detector_weights, found_details, fuse
from orchestrator.pipeline.discover.picture import PictureArea

__all__ = ["Discoverer", "Discovery", "FoundPosition", "Fused", "FusedPosition", "PictureArea", "detector_weights", "found_details", "fuse"]
