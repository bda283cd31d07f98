"""DTP with the difference reconstruction loss (DRL) for its inverses (Meulemans, Carzaniga,
Suykens, Sacramento & Grewe 2020, "A theoretical framework for target propagation", NeurIPS).

Forward weights, targets and everything else are DTP's (target_prop.py): the penultimate target
h^_{L-1} = h_{L-1} - alpha dL/dh_{L-1}, carried down by the difference correction
    h^_{l-1} = h_{l-1} + g_l(h^_l) - g_l(h_l).
Only the inverses' loss changes. DTP trains g_l to invert f_l alone (noise-preserving
reconstruction), which in a network that is not invertible leaves errors that the difference
correction passes on to every target below. The DRL instead trains g_l to undo, through the
very difference rule that carries targets, a perturbation that went all the way up:

    eps ~ N(0, sigma^2) on layer l-1's output h_{l-1} (layer l's input; 0-based l >= 1),
    h~_{L-1} = f_{L-1} o ... o f_l (h_{l-1} + eps)       the perturbed sample, forward to the top
    h~_{k-1} = h_{k-1} + g_k(h~_k) - g_k(h_k)            down again, k = L-1 .. l+1 (DTP's rule)
    r_{l-1}  = h_{l-1} + g_l(h~_l) - g_l(h_l)            g_l's reconstruction of the input
    DRL_l    = (1 / sigma^2) || (h_{l-1} + eps) - r_{l-1} ||^2

with the gradient going to g_l's parameters V_l, c_l only (the inverses above are constants,
as they are when the targets are carried down). Minimising it makes the difference-corrected
chain of inverses a local inverse of the whole forward path above layer l-1, which the paper
shows makes the propagated targets approximate Gauss-Newton targets.

What biobench matches: the authors' DTP-DRL (their code's DTPDRLNetwork and DTPDRLLayer: one
noise sample per layer and minibatch, the 1/sigma^2 scale, no further regulariser); the squared
norm is summed over units and averaged over the batch like every biobench local loss. The top
of the chain is biobench DTP's top, the penultimate layer L-1 (its target comes from the
gradient step, and the output layer has no inverse), where the authors' networks propagate from
the output layer. This is layer-wise DTP-DRL; the paper's "DDTP" variants, with direct feedback
connections from the output to every hidden layer, are not implemented. Inverses and forward
weights learn in parallel or alternating epochs exactly as for DTP (`mode`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from biobench.learners.base import Trace
from biobench.learners.target_prop import DifferenceTargetProp, _sq_error
from biobench.registry import ALGORITHMS
from biobench.spec.params import HParam

DRL_SIGMA = HParam(
    float,
    "std of the DRL's perturbation (the loss is scaled by 1/sigma^2)",
    low=0.0,
    low_open=True,
    default=0.1,
)


# Named dtp-drl: "DDTP" in Meulemans et al. is the direct-feedback variant, which biobench does
# not implement; `ddtp`, this rule's earlier name, stays an alias so old commands still run.
@ALGORITHMS.register(
    "dtp-drl", aliases=("ddtp",), label="DTP-DRL", family="target-propagation", order=35
)
class DifferenceReconstructionDTP(DifferenceTargetProp):
    """DTP whose inverses train on the difference reconstruction loss (Meulemans et al.)."""

    hparams = {**DifferenceTargetProp.hparams, "sigma": DRL_SIGMA}

    def inverse_losses(self, trace: Trace) -> dict[int, Tensor]:
        """DRL_l for every inverse (graph reaches that inverse's V and c only)."""
        sigma = self.hp["sigma"]
        layers = self.net.layers
        top = len(layers) - 2  # the penultimate layer, where the targets start
        out = [h.detach() for h in trace.out]  # clean activations, constants here
        losses = {}
        for i in self._inverted(len(layers) - 1):
            h_in = trace.inputs[i]  # h_{l-1}, a constant
            noisy = h_in + sigma * torch.randn_like(h_in)
            with torch.no_grad():
                up = noisy
                for k in range(i, top + 1):  # the perturbation, forward to the top
                    up = layers[k](up)
                for k in range(top, i, -1):  # and down to layer i by the difference rule
                    up = out[k - 1] + self.g(k, up) - self.g(k, out[k])
            reconstruction = h_in + self.g(i, up) - self.g(i, out[i])
            losses[i] = _sq_error(reconstruction, noisy) / sigma**2
        return losses
