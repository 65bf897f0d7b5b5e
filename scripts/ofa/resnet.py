"""The OFA image stem: ResNet stem + Bottleneck stages 1..3 (no layer4, no fc), output 1024 channels, stride 16."""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class Bottleneck(nn.Module):
    """torchvision v1.5 Bottleneck: 1x1 -> 3x3 (stride) -> 1x1 (x4), BN after each conv, ReLU."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: Optional[nn.Sequential],
                 device: Optional[torch.device] = None) -> None:
        super().__init__()
        kw = {"device": device}
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False, **kw)
        self.bn1 = nn.BatchNorm2d(planes, **kw)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False, **kw)
        self.bn2 = nn.BatchNorm2d(planes, **kw)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False, **kw)
        self.bn3 = nn.BatchNorm2d(planes * 4, **kw)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return F.relu(out + identity)


class ResNet(nn.Module):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) and three Bottleneck stages -> [B, 1024, H/16, W/16]."""

    def __init__(self, layers: List[int], device: Optional[torch.device] = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False, device=device)
        self.bn1 = nn.BatchNorm2d(64, device=device)
        self.inplanes = 64
        self.layer1 = self._make_layer(64, layers[0], 1, device)
        self.layer2 = self._make_layer(128, layers[1], 2, device)
        self.layer3 = self._make_layer(256, layers[2], 2, device)

    def _make_layer(self, planes: int, blocks: int, stride: int, device: Optional[torch.device]) -> nn.Sequential:
        downsample = nn.Sequential(
            nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False, device=device),
            nn.BatchNorm2d(planes * 4, device=device),
        )
        mods = [Bottleneck(self.inplanes, planes, stride, downsample, device)]
        self.inplanes = planes * 4
        mods += [Bottleneck(self.inplanes, planes, 1, None, device) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        return self.layer3(self.layer2(self.layer1(x)))
