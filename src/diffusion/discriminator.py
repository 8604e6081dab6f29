"""The patch discriminator the adversarial objectives share (student PatchGAN, distillation's GAN head)."""

from __future__ import annotations

from torch import Tensor, nn


class PatchDiscriminator(nn.Module):
    """PatchGAN: strided 4x4 convolutions to a map of per-patch real/fake logits (``n 1 h' w'``)."""

    def __init__(self, *, channels: int = 32, layers: int = 3):
        super().__init__()
        modules: list[nn.Module] = []
        width_in = 3
        for layer in range(layers):
            width = channels * 2**layer
            modules += [nn.Conv2d(width_in, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            if layer:
                modules.insert(-1, nn.GroupNorm(min(8, width), width))
            width_in = width
        modules.append(nn.Conv2d(width_in, 1, 3, padding=1))
        self.net = nn.Sequential(*modules)

    def forward(self, frames: Tensor) -> Tensor:  # n 3 h w in [-1, 1]
        return self.net(frames)
