"""A learning rule of one's own: feedback alignment whose feedback is a blend of the forward
weights and a fixed random matrix, B_l = gamma W_l + (1 - gamma) R_l (gamma = 1 is backprop,
gamma = 0 is FA). The update is recomputed layer by layer with biobench's local machinery."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from biobench import (
    ADAM,
    HParam,
    Learner,
    adam,
    local_backward,
    local_forward,
    output_error,
    transpose,
)


class MyRule(Learner):
    """Feedback alignment with feedback gamma W + (1 - gamma) R."""

    hparams = {**ADAM, "gamma": HParam(float, "feedback gain", low=0.0, high=1.0, default=0.5)}
    label = "My rule"
    family = "feedback"
    order = 55

    def __init__(self, net, hp):
        super().__init__(net, hp)
        self.opt = adam(net.parameters(), self.hp)
        self.random = [torch.randn_like(layer.op.weight) * 0.05 for layer in net.layers[1:]]

    def train_step(self, x, y):
        trace = local_forward(self.net, x)
        logits = trace.pre[-1]
        delta = output_error(logits, y)
        self.opt.zero_grad(set_to_none=True)
        gamma = self.hp["gamma"]
        for l in reversed(range(len(self.net.layers))):
            layer = self.net.layers[l]
            local_backward(trace.pre[l], delta, layer.parameters())
            if l > 0:
                below = self.net.layers[l - 1]
                feedback = gamma * layer.op.weight.detach() + (1 - gamma) * self.random[l - 1]
                signal = transpose(layer.op, delta, feedback).reshape(-1, *below.output_shape)
                h = trace.out[l - 1].detach()
                delta = signal * below.activation.derivative(trace.pre[l - 1].detach(), h)
        self.opt.step()
        return {"loss": F.cross_entropy(logits.detach(), y)}

    def optimizers(self):
        return {"forward": self.opt}
