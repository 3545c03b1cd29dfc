"""Task options: parsed once at submission (bad options are a 400) and stored with the task."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.errors import InputError


class Region(BaseModel):
    """A box in pixels of the input frame, optionally limited to a time range in seconds."""

    model_config = ConfigDict(extra="forbid")

    box: tuple[float, float, float, float]
    start: float | None = Field(default=None, ge=0)
    end: float | None = Field(default=None, ge=0)

    @field_validator("box")
    @classmethod
    def _ordered(cls, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = box
        if min(box) < 0 or x2 <= x1 or y2 <= y1:
            raise ValueError("box must be [x1, y1, x2, y2] with 0 <= x1 < x2 and 0 <= y1 < y2")
        return box

    @model_validator(mode="after")
    def _range(self) -> "Region":
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def active_at(self, t: float) -> bool:
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)


class TaskOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    regions: list[Region] = Field(default_factory=list, max_length=64)
    detect: bool = True
    method: Literal["auto", "inpaint"] = "auto"

    @classmethod
    def from_form(
        cls, regions: str | None = None, detect: str | None = None, method: str | None = None
    ) -> "TaskOptions":
        """Parse the multipart form fields; raises InputError with a message naming the field."""
        parsed_regions: list[Region] = []
        if regions not in (None, ""):
            try:
                raw = json.loads(regions)
            except json.JSONDecodeError as exc:
                raise InputError(f"regions: not valid JSON ({exc.msg})") from exc
            if not isinstance(raw, list):
                raise InputError("regions: expected a JSON list of [x1,y1,x2,y2] or {box,start,end}")
            try:
                parsed_regions = [
                    Region(box=item) if isinstance(item, list) else Region.model_validate(item)
                    for item in raw
                ]
            except (ValidationError, TypeError) as exc:
                raise InputError(f"regions: {_first_error(exc)}") from exc
        if detect in (None, ""):
            # Regions replace detection unless detection is asked for explicitly.
            do_detect = not parsed_regions
        elif detect.strip().lower() in {"true", "1", "yes", "on"}:
            do_detect = True
        elif detect.strip().lower() in {"false", "0", "no", "off"}:
            do_detect = False
        else:
            raise InputError("detect: expected true or false")
        if not do_detect and not parsed_regions:
            raise InputError("detect=false needs regions: there would be nothing to remove")
        try:
            return cls(regions=parsed_regions, detect=do_detect, method=method or "auto")
        except ValidationError as exc:
            raise InputError(_first_error(exc)) from exc


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        return f"{where}: {err['msg']}" if where else err["msg"]
    return str(exc)
