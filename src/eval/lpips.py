"""Perceptual distance: Shift-Tolerant LPIPS (Ghildyal & Liu, ECCV 2022) with the AlexNet trunk,
offline, as a metric and as a training loss.

LPIPS (Zhang et al. 2018) compares two images through a network's features: at each of five
layers the features are unit-normalised along channels, their squared difference is weighted
per channel by a learned 1x1 layer (the "lin" head), averaged over space, and the five layers
summed. ST-LPIPS retrains the trunk and heads on BAPPS with blur pooling (every stride-2 step
is a [1 2 1] x [1 2 1] blur on a reflection-padded map, then subsampling) and a first
convolution of stride 1, so that a shift of a pixel or two barely changes the distance: what
we want when a renderer's frame is compared with a real frame its conditions were extracted
from, where small misalignments are expected.

The weights come from the PyPI wheel ``stlpips-pytorch`` (BSD-2-Clause;
``weights/vST0.0/alex_shift_tolerant.pth``, 9.9 MB). Its modules import IPython, torchsummary
and torchvision at the top, so the network is built here (``STLPIPSAlex``, whose parameter and
buffer names are the state dict's) and only the weight file is read.

Why AlexNet and not VGG16: the LPIPS authors recommend the AlexNet variant as a forward metric
(it agrees best with human judgements on BAPPS), and it is 2.5M parameters against 14.7M, so
it runs on every evaluation and in a training loss on a CPU.

    distance = STLPIPS()                      # loads the weights once
    distance(a, b)                            # n 3 h w in [0, 1] each -> n distances (0 = same)
    PerceptualLoss()(prediction, target)      # ... in [-1, 1], any leading dims -> scalar, differentiable
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.eval.inception import packaged_file

STLPIPS_PACKAGE = "stlpips_pytorch"
STLPIPS_ALEX_FILE = "weights/vST0.0/alex_shift_tolerant.pth"
ALEX_CHANNELS = (64, 192, 384, 256, 256)
MIN_SIZE_PX = 21  # smaller frames leave the last blur's reflection padding wider than its map


class BlurDownsample(nn.Module):
    """Anti-aliased stride-2 subsampling: reflection pad of 2, a depthwise [1 2 1]^T [1 2 1] / 16
    blur, every second pixel."""

    def __init__(self, channels: int):
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :] / 16
        self.register_buffer("filt", kernel[None, None].repeat(channels, 1, 1, 1))  # c 1 3 3

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class ScalingLayer(nn.Module):
    """LPIPS's input normalisation: ``(x - shift) / scale`` per channel, x in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.zeros(1, 3, 1, 1))
        self.register_buffer("scale", torch.ones(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.shift) / self.scale


class STAlexTrunk(nn.Module):
    """The shift-tolerant AlexNet trunk, as five slices whose outputs LPIPS compares. Module
    indices follow one flat feature list (0-14), so the names are the weight file's."""

    def __init__(self):
        super().__init__()
        c = ALEX_CHANNELS
        layers = [
            nn.Conv2d(3, c[0], 11, stride=1, padding=2), BlurDownsample(c[0]), nn.ReLU(),  # 0-2
            nn.MaxPool2d(3, stride=1), BlurDownsample(c[0]), nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(),  # 3-6
            nn.MaxPool2d(3, stride=1), BlurDownsample(c[1]), nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(),  # 7-10
            nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(),  # 11-12
            nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(),  # 13-14
        ]  # fmt: skip
        bounds = (0, 3, 7, 11, 13, 15)
        for index in range(5):
            piece = nn.Sequential()
            for position in range(bounds[index], bounds[index + 1]):
                piece.add_module(str(position), layers[position])
            setattr(self, f"slice{index + 1}", piece)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for index in range(1, 6):
            x = getattr(self, f"slice{index}")(x)
            outputs.append(x)
        return outputs


class LinearHead(nn.Module):
    """A layer's learned weighting: a 1x1 convolution to one channel, no bias (``model.0`` is
    the head's dropout in training, an identity here)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class STLPIPSAlex(nn.Module):
    """ST-LPIPS (AlexNet): ``forward(a, b)`` with ``n 3 h w`` in [-1, 1] -> ``n`` distances.
    Frames need at least ``MIN_SIZE_PX`` pixels a side (the trunk subsamples three times)."""

    def __init__(self):
        super().__init__()
        self.scaling_layer = ScalingLayer()
        self.net = STAlexTrunk()
        for index, channels in enumerate(ALEX_CHANNELS):
            setattr(self, f"lin{index}", LinearHead(channels))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        features_a, features_b = self.net(self.scaling_layer(a)), self.net(self.scaling_layer(b))
        total = 0
        for index, (fa, fb) in enumerate(zip(features_a, features_b)):
            fa = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # unit length along channels
            fb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + getattr(self, f"lin{index}")((fa - fb) ** 2).mean((2, 3))
        return total[:, 0]


def load_stlpips_alex(device: str | torch.device = "cpu") -> STLPIPSAlex:
    """ST-LPIPS (AlexNet) with the wheel's weights (every parameter and buffer loaded), frozen, in eval mode."""
    state = torch.load(
        packaged_file(STLPIPS_PACKAGE, STLPIPS_ALEX_FILE), map_location="cpu", weights_only=True
    )
    network = STLPIPSAlex()
    network.load_state_dict(state, strict=True)
    network.requires_grad_(False)
    return network.to(device).eval()


class STLPIPS:
    """ST-LPIPS distances of frames in [0, 1]; the network loads on first use."""

    def __init__(self, *, device: str | torch.device = "cpu", batch_size: int = 32):
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._network = None

    @property
    def network(self) -> STLPIPSAlex:
        if self._network is None:
            self._network = load_stlpips_alex(self.device)
        return self._network

    @torch.no_grad()
    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        """``n 3 h w`` in [0, 1] each -> ``n`` distances (on the CPU)."""
        parts = [
            self.network(x.to(self.device).float() * 2 - 1, y.to(self.device).float() * 2 - 1).cpu()
            for x, y in zip(a.split(self.batch_size), b.split(self.batch_size))
        ]
        return torch.cat(parts) if parts else torch.zeros(0)


class PerceptualLoss(nn.Module):
    """Mean ST-LPIPS between a prediction and its target (``... 3 h w`` in [-1, 1], leading dims
    flattened), differentiable in the prediction; the network is frozen. For objectives with an
    L1/L2 term to a frame (``perceptual_weight``)."""

    def __init__(self):
        super().__init__()
        self.network = load_stlpips_alex()

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        shape = prediction.shape[-3:]
        distance = self.network(prediction.reshape(-1, *shape).float(), target.reshape(-1, *shape).float())
        return distance.mean()
