"""Ops shared by every learner: initialisation and the locally-connected op."""

from __future__ import annotations

from biobench.nn.init import glorot_, glorot_fans, glorot_like, glorot_uniform_

__all__ = ["glorot_", "glorot_fans", "glorot_like", "glorot_uniform_"]
