"""Detections shared by the box and scan tests: two mark positions and detector rows around them."""

from __future__ import annotations

import numpy as np

A = np.array([30, 68, 179, 118], np.float64)
B = np.array([1112, 321, 1266, 367], np.float64)


def det(box, score=0.9, jitter=0.0):
    return np.array([[*(np.asarray(box) + jitter), score]], np.float32)


def none():
    return np.zeros((0, 5), np.float32)
