"""Small clips with known overlays, drawn in memory for the discovery tests: a moving background
(``export.watermark.Background``), a mark that jumps between three places on a schedule, an
optional pillarbox. Facts from DESIGN.md ("The real mark"): a solid white body at α ≈ 0.8, text
beside it, a jump every ~2.2 s, revisits; and a mark of another shape (a ring with bars, α 0.55)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from export.clips import frame_score
from export.watermark import Background, Template, composite, sora_schedule, sora_template


def ring_template(width: int) -> Template:
    """A ring with two bars beside it, white, alpha 1 (scaled by the clip's opacity)."""
    h = max(8, width // 3)
    img = Image.new("L", (width * 4, h * 4), 0)
    d = ImageDraw.Draw(img)
    r = h * 2 - 4
    d.ellipse((4, 4, 4 + 2 * r, 4 + 2 * r), outline=255, width=max(4, h // 2))
    bx = 2 * r + 16
    for k in range(2):
        x = bx + k * (width * 4 - bx) // 2
        d.rectangle((x, h, x + (width * 4 - bx) // 3, h * 3), fill=255)
    a = np.asarray(img.resize((width, h), Image.LANCZOS), np.float32) / 255.0
    return Template(a, np.full((h, width, 3), 255.0, np.float32))


@dataclass
class OverlayClip:
    """Frames of a clip with a jumping overlay, and the truth: the mark's box per frame or None."""

    width: int
    height: int
    n_frames: int
    seed: int = 0
    opacity: float = 0.8
    shape: str = "sora"  # "sora" | "ring" | "none"
    picture: tuple[int, int, int, int] | None = None  # pillarboxed picture (x0, y0, x1, y1)
    fps: float = 30.0
    background: str | None = None

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.picture or (0, 0, self.width, self.height)
        self.pw, self.ph = x1 - x0, y1 - y0
        self.bg = Background(self.pw, self.ph, fps=self.fps, seed=self.seed, kind=self.background)
        mark_w = max(24, int(round(150 * min(self.pw / 1280, self.ph / 704) if self.pw >= self.ph
                                   else 150 * min(self.pw / 704, self.ph / 1280))))
        self.template = ring_template(mark_w) if self.shape == "ring" else sora_template(mark_w, None)
        self.schedule = sora_schedule(self.n_frames, width=self.pw, height=self.ph, fps=self.fps,
                                      tw=self.template.width, th=self.template.height, opacity=self.opacity,
                                      fade_frames=0, jitter=0, start_slot=self.seed % 3, seed=self.seed)

    def frame(self, i: int) -> np.ndarray:
        pic = self.bg.frame(i)
        p = self.schedule[i]
        if self.shape != "none":
            pic = composite(pic, self.template, p.x, p.y, p.opacity)
        if self.picture is None:
            return pic
        out = np.zeros((self.height, self.width, 3), np.uint8)
        x0, y0, x1, y1 = self.picture
        out[y0:y1, x0:x1] = pic
        return out

    def box(self, i: int) -> tuple[int, int, int, int] | None:
        if self.shape == "none":
            return None
        p = self.schedule[i]
        ox, oy = (self.picture or (0, 0))[:2]
        return (ox + p.x, oy + p.y, ox + p.x + self.template.width, oy + p.y + self.template.height)


def frame_scores(clip: OverlayClip, timeline) -> tuple[float, float]:
    """(recall, precision) of marked frames: a frame's mark is found when a box of the timeline
    covers half of it; a box is right when it covers half of the true mark in that frame."""
    sc = frame_score([clip.box(i) for i in range(clip.n_frames)], timeline)
    return (sc.found / sc.marked if sc.marked else 1.0), (sc.right / sc.boxes if sc.boxes else 1.0)
