"""Ops shared by every learner: initialisation now; the locally-connected op joins here."""

from __future__ import annotations

from biobench.nn.init import glorot_

__all__ = ["glorot_"]
