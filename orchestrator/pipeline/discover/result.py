"""What discovery hands on: the confirmed places (``FoundPosition``) and their timeline
(``Discovery``), and the rules that turn candidate tracks into them: places found apart that are
one overlay merge, an overlay holds still, and a jump's two steps pair up (one mark)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline.discover.picture import PictureArea
from orchestrator.pipeline.discover.tracks import Track, runs, same_shape
from orchestrator.pipeline.discover.visits import PAIR_ALPHA, SHAPE_MATCH, edge_bounded, jump_pair, seen_elsewhere

MIN_VISIT = 15  # frames an overlay stays at a place (the Sora mark: 67)


@dataclass(frozen=True)
class FoundPosition:
    """One place an overlay visits: box (frame pixels), visits [start, end) frames, the α its
    steps fit, which mark it belongs to (same size and α), and why it is (not) used."""

    box: tuple[float, float, float, float]
    visits: tuple[tuple[int, int], ...]
    alpha: float | None
    steps: int
    mark: int

    def summary(self) -> dict:
        return {"box": [round(v, 1) for v in self.box], "visits": [list(v) for v in self.visits],
                "frames": int(sum(b - a for a, b in self.visits)),
                "alpha": None if self.alpha is None else round(self.alpha, 2), "steps": self.steps,
                "mark": self.mark}


@dataclass(frozen=True)
class Discovery:
    """What discovery found: the picture area, the confirmed positions and their timeline."""

    picture: PictureArea
    positions: tuple[FoundPosition, ...]
    timeline: bx.Timeline
    frames: int
    seconds: float
    candidates: int  # places looked at (tracks), confirmed or not
    cpu_seconds: float = 0.0  # CPU time of the thread that ran discovery

    @property
    def marks(self) -> int:
        return len({p.mark for p in self.positions})

    def summary(self) -> dict:
        return {"picture": self.picture.summary(), "marks": self.marks,
                "positions": [p.summary() for p in self.positions], "candidates": self.candidates,
                "ms_per_frame": round(1000 * self.seconds / max(self.frames, 1), 2),
                "cpu_ms_per_frame": round(1000 * self.cpu_seconds / max(self.frames, 1), 2)}


def _union(a: tuple, b: tuple) -> tuple:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _joined(a: Track, b: Track, limit: tuple[float, float] | None) -> tuple:
    """The box of two places found apart as one overlay; where their extents together are larger
    than a mark (one extent took texture along), the partner's template box instead, else the
    first's own extent (its steps and visits still join)."""
    ea = a.extent or a.box
    for eb in (b.extent or b.box, b.box):
        box = _union(ea, eb)
        if limit is None or (box[2] - box[0] <= limit[0] and box[3] - box[1] <= limit[1]):
            return box
    return ea


def merge(kept: list[tuple[Track, np.ndarray]], limit: tuple[float, float] | None = None
          ) -> list[tuple[Track, np.ndarray]]:
    """Places that touch and hold their overlay on the same frames are one overlay (an icon and
    its text found apart): one box around both (at most ``limit`` (w, h)), present when either is."""
    out = list(kept)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                (a, pa), (b, pb) = out[i], out[j]
                ea, eb = a.extent or a.box, b.extent or b.box
                near = (ea[0] - 4 <= eb[2] and eb[0] - 4 <= ea[2] and ea[1] - 4 <= eb[3] and eb[1] - 4 <= ea[3])
                agree = (pa & pb).sum() / max(min(pa.sum(), pb.sum()), 1)
                if near and agree >= 0.8:
                    if b.confirmed and not a.confirmed:
                        (a, pa), (b, pb) = (b, pb), (a, pa)
                    a.extent = _joined(a, b, limit)
                    a.steps.extend(b.steps)
                    out[i] = (a, pa | pb)
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out


def steady(on: np.ndarray, *, short_edges: bool = False) -> bool:
    """An overlay holds still for its visits: few runs, and every visit the video does not cut
    short lasts ``MIN_VISIT`` frames (a face or a hand flickers in and out of a fixed place); a
    visit the video cuts short lasts 6 frames, or any where the place jumped (``short_edges``)."""
    spans = runs(on)
    inner = [b - a for a, b in spans if a > 0 and b < on.size]
    edge = [b - a for a, b in spans if a == 0 or b == on.size]
    return (bool(spans) and len(spans) <= 2 + on.size / 30 and min(inner, default=MIN_VISIT) >= MIN_VISIT
            and (short_edges or min(edge, default=6) >= 6))


def paired(kept: list[tuple[Track, np.ndarray]], every: list[tuple[Track, np.ndarray]],
           tracks: list[Track] = ()) -> list[tuple[Track, np.ndarray]]:
    """Keep the places whose steps pair with another place's (``visits.jump_pair``): the mark
    leaves one place and a same-looking one arrives at another within a few frames. Where only one
    place is found (a mark that never jumps in the clip), it must arrive and leave there with
    the same α map (a few pixels of a face stepping twice do not), or hold one visit that the
    video cuts on one side and a step of a mark's size bounds on the other (``edge_bounded``);
    such a visit is kept among others too where that step shows the α and map of a step at
    another place of ``tracks`` (``seen_elsewhere``: the jump's other side was not seen)."""
    out = []
    for track, on in kept:
        mine = [s for s in track.steps if s.fits]
        paired = any(jump_pair(a, b) for other, _ in every if other is not track
                     for a in mine for b in other.steps)
        alone = len(kept) == 1 and (edge_bounded(track, on) or any(
            a.arrive and not b.arrive and a.frame != b.frame and same_shape(a.shape, b.shape) >= SHAPE_MATCH
            for a in mine for b in mine))
        cut = not (paired or alone) and edge_bounded(track, on) and seen_elsewhere(track, tracks)
        if paired or alone or cut:
            out.append((track, on))
    return out + revisited(kept, out)


def revisited(kept: list[tuple[Track, np.ndarray]], marks: list[tuple[Track, np.ndarray]]
              ) -> list[tuple[Track, np.ndarray]]:
    """Places whose own steps fit but pair with none (the step on the other side of the jump was
    not fitted) yet look like a paired mark: a template box of its size (within 15 %) and its α
    (within ``PAIR_ALPHA``): the same mark visiting another place."""
    def size(t: Track) -> tuple[int, int]:
        return t.box[2] - t.box[0], t.box[3] - t.box[1]

    out = []
    for track, on in kept:
        if any(track is t for t, _ in marks) or track.alpha() is None:
            continue
        (w, h), alpha = size(track), track.alpha()
        for mark, _ in marks:
            mw, mh = size(mark)
            if (mark.alpha() is not None and abs(alpha - mark.alpha()) <= PAIR_ALPHA
                    and abs(w - mw) <= 0.15 * max(w, mw) and abs(h - mh) <= 0.15 * max(h, mh)):
                out.append((track, on))
                break
    return out


def group(items: list[tuple[tuple, float | None]]) -> list[int]:
    """Mark ids: places of one size (within 30 %) and α (within 0.15) are one mark jumping."""
    ids: list[int] = []
    for i, (box, alpha) in enumerate(items):
        w, h = box[2] - box[0], box[3] - box[1]
        for j in range(i):
            b2, a2 = items[j]
            w2, h2 = b2[2] - b2[0], b2[3] - b2[1]
            same_alpha = alpha is None or a2 is None or abs(alpha - a2) <= 0.15
            if abs(w - w2) <= 0.3 * max(w, w2) and abs(h - h2) <= 0.3 * max(h, h2) and same_alpha:
                ids.append(ids[j])
                break
        else:
            ids.append(max(ids, default=-1) + 1)
    return ids


def jump_marks(kept: list[tuple[Track, np.ndarray]], marks: list[int]) -> list[int]:
    """Mark ids with the places one mark jumped between joined (``linked``): a place whose extent
    took texture along is not of its mark's size (a ring's third place, 50×49 against 45×27, held
    out other_shape 8002), and a mark split in two each covering under half the video is not taken
    (``fuse.MIN_MARK_COVERAGE``)."""
    ids = list(marks)
    for i in range(len(kept)):
        for j in range(len(kept)):
            if ids[i] != ids[j] and linked(kept[i], [kept[k] for k in range(len(kept)) if ids[k] == ids[j]]):
                old, new = max(ids[i], ids[j]), min(ids[i], ids[j])
                ids = [new if m == old else m for m in ids]
    order = list(dict.fromkeys(ids))
    return [order.index(m) for m in ids]


def linked(place: tuple[Track, np.ndarray], mark: list[tuple[Track, np.ndarray]]) -> bool:
    """The mark came to ``place`` and left it: a fitted arrival there pairs with a departure at a
    place of ``mark`` and a fitted departure with an arrival (``visits.jump_pair``), for each way
    its visits start or end inside the video (a face's two features stepping once do not make both)."""
    track, on = place
    spans = runs(on)
    if not spans:
        return False
    theirs = [s for t, _ in mark if t is not track for s in t.steps if s.fits]
    sides = {a.arrive for a in track.steps if a.fits for b in theirs if jump_pair(a, b)}
    need = {True for a, _ in spans if a > 0} | {False for _, b in spans if b < on.size}
    return bool(sides) and need <= sides


def share_extent(kept: list[tuple[Track, np.ndarray]], size: tuple[int, int]) -> None:
    """Every visit shows the same matte: where two places of one mark (icon boxes of one size, the
    same α) found different extents (one saw its text step with it, the other did not), the smaller
    takes the larger's extent around its own icon."""
    for a, _ in kept:
        for b, _ in kept:
            if a is b or a.alpha() is None or b.alpha() is None or abs(a.alpha() - b.alpha()) > 0.1:
                continue
            wa, ha = a.box[2] - a.box[0], a.box[3] - a.box[1]
            wb, hb = b.box[2] - b.box[0], b.box[3] - b.box[1]
            if abs(wa - wb) > 0.3 * max(wa, wb) or abs(ha - hb) > 0.3 * max(ha, hb):
                continue
            ea, eb = a.extent or a.box, b.extent or b.box
            if (eb[2] - eb[0]) * (eb[3] - eb[1]) <= 1.2 * (ea[2] - ea[0]) * (ea[3] - ea[1]):
                continue
            if eb[3] - eb[1] > 1.35 * hb:
                continue  # text beside an icon widens it; a much taller extent took texture along
            grown = (a.box[0] + eb[0] - b.box[0], a.box[1] + eb[1] - b.box[1],
                     a.box[2] + eb[2] - b.box[2], a.box[3] + eb[3] - b.box[3])
            a.extent = (max(0, min(ea[0], grown[0])), max(0, min(ea[1], grown[1])),
                        min(size[0], max(ea[2], grown[2])), min(size[1], max(ea[3], grown[3])))


def one_place_at_a_time(kept: list[tuple[Track, np.ndarray]], marks: list[int]) -> None:
    """A mark (one group, or two places that jumped one to the other) is at one place at a time:
    where it fitted an arrival at one place, its visit at another place that runs on over that
    frame ends there; where it fitted a departure, the visit
    elsewhere that started earlier starts there (a place whose template texture also matches
    reads as present long before and after its visit)."""
    for (track, _), mark in zip(kept, marks):
        for step in (s for s in track.steps if s.fits):
            f = step.frame
            for (other, on), other_mark in zip(kept, marks):
                if other is track or other_mark != mark and not any(jump_pair(step, s) for s in other.steps):
                    continue
                for a, b in runs(on):
                    if a < f < b:
                        if step.arrive:
                            on[f:b] = False
                        else:
                            on[a:f] = False
