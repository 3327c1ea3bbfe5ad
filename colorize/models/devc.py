"""Official Deep Exemplar-based Video Colorization checkpoints (DEVC).

Zhang, He, Liao, Sander, Yuan, Bermak, Chen: "Deep Exemplar-based Video Colorization", CVPR 2019.
Official code and weights: https://github.com/zhangmozhe/Deep-Exemplar-based-Video-Colorization
(``test.py``; the weights are published on that project's GitHub releases page).

This module re-implements the official inference so that the user's downloaded files
``vgg19_conv.pth``, ``nonlocal_net_iter_76000.pth`` and ``colornet_iter_76000.pth`` load strictly
under their own key names, and computes what ``test.py`` computes (checked stage by stage against a
recorded run of the unmodified official code; see ``tests/models/test_devc.py``). Nothing is shipped:
colorize never downloads these weights.

Mapping onto :class:`~colorize.models.base.StreamColorizer` (see docs/devc.md): the pushed L is the
official ``image_size`` picture (432x768 for 16:9 at the default render size 432); the networks run
at half of it (216x384), exactly as ``test.py`` downsamples; the official post-processing (bilinear
x2, x1.25, fast global smoother guided by the pushed L) brings ab back to the pushed size, which the
pipeline then upsamples edge-aware to full resolution under the untouched original luma.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colorize.color.lab import lab_to_rgb
from colorize.models.base import ModelInfo, StreamColorizer
from colorize.models.devc_smoother import fast_global_smoother
from colorize.models.registry import WeightsError, load_into, load_state, register_model

OFFICIAL_REPO = "zhangmozhe/Deep-Exemplar-based-Video-Colorization"
OFFICIAL_RELEASES = f"https://github.com/{OFFICIAL_REPO}/releases"
WEIGHTS_ENV = "COLORIZE_DEVC_WEIGHTS"
# checkpoint name (as in the fixture's keys.json) -> file name in the official release
CHECKPOINT_FILES = {
    "vgg19_conv": "vgg19_conv.pth",
    "nonlocal_net": "nonlocal_net_iter_76000.pth",
    "colornet": "colornet_iter_76000.pth",
}
# sha256 of the official release files. We have never seen them, so none are known; a record here
# makes the check strict (a mismatch raises). The files' actual hashes always go into provenance.
KNOWN_SHA256: dict[str, str] = {}

TEMPERATURE = 1e-10  # test.py: a hard argmax over the correlation
SATURATION_BOOST = 1.25  # test.py multiplies the upsampled ab by 1.25
MIN_WORK = 32  # smallest (padded) network input side: VGG's stride-16 map must be at least 2x2
_EPS = 2.220446049250313e-16  # sys.float_info.epsilon, as feature_normalize uses
_VGG_MEAN_BGR = (0.40760392, 0.45795686, 0.48501961)
_SK_WHITE = (0.95047, 1.0, 1.08883)  # skimage's D65 white, as the official code uses
_SK_XYZ_FROM_RGB = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169),
                    (0.019334, 0.119193, 0.950227))
_RGB_FROM_XYZ_ROWS = ((3.24048134, -0.96925495, 0.05564664), (-1.53715152, 1.87599, -0.20404134),
                      (-0.49853633, 0.04155593, 1.05731107))  # utils/util.py, row-vector convention


# ------------------------------------------------------------------------------ official colour maths


def official_rgb_to_lab(rgb_u8: torch.Tensor) -> torch.Tensor:
    """skimage ``rgb2lab`` in float64: (..., H, W, 3) uint8 -> Lab (..., 3, H, W) float32, L 0..100."""
    x = rgb_u8.to(torch.float64) / 255.0
    x = torch.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
    xyz = x @ torch.tensor(_SK_XYZ_FROM_RGB, dtype=torch.float64, device=x.device).T
    t = xyz / torch.tensor(_SK_WHITE, dtype=torch.float64, device=x.device)
    t = torch.where(t > 0.008856, torch.pow(t, 1.0 / 3.0), 7.787 * t + 16.0 / 116.0)
    fx, fy, fz = t.unbind(-1)
    lab = torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)
    return lab.to(torch.float32)


def official_lab_to_rgb_u8(lab: torch.Tensor) -> torch.Tensor:
    """skimage ``lab2rgb`` in float64, then ``clip * 255`` truncated to uint8, as test.py saves.

    lab: (B, 3, H, W), L 0..100 -> (B, H, W, 3) uint8.
    """
    l, a, b = lab.to(torch.float64).unbind(-3)
    y = (l + 16.0) / 116.0
    t = torch.stack((a / 500.0 + y, y, (y - b / 200.0).clamp(min=0.0)), dim=-1)
    t = torch.where(t > 0.2068966, t**3, (t - 16.0 / 116.0) / 7.787)
    t = t * torch.tensor(_SK_WHITE, dtype=torch.float64, device=t.device)
    m = torch.linalg.inv(torch.tensor(_SK_XYZ_FROM_RGB, dtype=torch.float64, device=t.device))
    v = t @ m.T
    v = torch.where(v > 0.0031308, 1.055 * v.clamp(min=0.0031308) ** (1 / 2.4) - 0.055, v * 12.92)
    return (v.clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def tensor_lab2rgb(lab: torch.Tensor) -> torch.Tensor:
    """The official float32 ``utils.util.tensor_lab2rgb``: Lab (B, 3, H, W), L 0..100 -> sRGB [0, 1]."""
    l, a, b = lab.unbind(1)
    y = (l + 16.0) / 116.0
    x = a / 500.0 + y
    z = y - b / 200.0
    z = torch.where(z < 0, torch.zeros_like(z), z)
    xyz = torch.stack((x, y, z), dim=-1)
    xyz = torch.where(xyz > 0.2068966, xyz.pow(3.0), (xyz - 16.0 / 116.0) / 7.787)
    xyz = xyz * torch.tensor((0.95047, 1.0, 1.08883), dtype=xyz.dtype, device=xyz.device)
    rgb = xyz @ torch.tensor(_RGB_FROM_XYZ_ROWS, dtype=xyz.dtype, device=xyz.device)
    rgb = torch.where(rgb > 0.0031308, 1.055 * rgb.clamp(min=0.0031308).pow(1 / 2.4) - 0.055, rgb * 12.92)
    return rgb.clamp(0.0, 1.0).permute(0, 3, 1, 2)


def center_pad(rgb_u8: np.ndarray, size: tuple[int, int], resize=None) -> np.ndarray:
    """The official ``CenterPad``: scale to cover ``size`` (H, W), centre-crop, truncate to uint8.

    ``resize(img, (h, w)) -> float array`` defaults to a torch port of the official
    ``skimage.transform.resize(..., mode="reflect", preserve_range=True, anti_aliasing=True)``
    (equal up to float64 rounding, so a truncated byte can differ by 1).
    """
    big_h, big_w = size
    h0, w0 = rgb_u8.shape[:2]
    if resize is None:
        resize = _torch_resize
    ratio = big_h / big_w
    if h0 / w0 == ratio:
        if h0 == big_h:
            return rgb_u8
        return resize(rgb_u8, (int(h0 * big_h / h0), int(w0 * big_h / h0))).astype(np.uint8)
    if h0 / w0 > ratio:
        r = resize(rgb_u8, (int(h0 * big_w / w0), int(w0 * big_w / w0)))
        s = (r.shape[0] - big_h) // 2
        return r[s:s + big_h].astype(np.uint8)
    r = resize(rgb_u8, (int(h0 * big_h / h0), int(w0 * big_h / h0)))
    s = (r.shape[1] - big_w) // 2
    return r[:, s:s + big_w].astype(np.uint8)


def _torch_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """skimage >= 0.19 ``resize(mode="reflect", anti_aliasing=True, order=1)`` in float64 torch:
    Gaussian pre-filter (sigma = (scale - 1) / 2 on shrunk axes, truncated at 4 sigma, mirror
    border), then linear interpolation on the pixel-centre grid with mirror borders."""
    x = torch.from_numpy(np.ascontiguousarray(img)).to(torch.float64)
    for axis, n_out in enumerate(size):
        x = _resize_axis(x, axis, n_out)
    return x.numpy()


def _resize_axis(x: torch.Tensor, axis: int, n_out: int) -> torch.Tensor:
    n_in = x.shape[axis]
    scale = n_in / n_out
    x = x.movedim(axis, -1)
    sigma = max(0.0, (scale - 1) / 2)
    if sigma > 0:
        r = int(4.0 * sigma + 0.5)
        k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
        k = k / k.sum()
        shape = x.shape
        flat = x.reshape(-1, 1, n_in)
        if r > 0:
            flat = F.pad(flat, (r, r), mode="reflect")  # ndimage "mirror": d c b | a b c d
        x = F.conv1d(flat, k.view(1, 1, -1)).reshape(shape)
    c = (torch.arange(n_out, dtype=torch.float64) + 0.5) * scale - 0.5
    c = torch.where(c < 0, -c, c)
    c = torch.where(c > n_in - 1, 2 * (n_in - 1) - c, c).clamp(0, n_in - 1)
    i0 = c.floor().long().clamp(max=n_in - 2) if n_in > 1 else torch.zeros_like(c, dtype=torch.long)
    t = c - i0
    i1 = (i0 + 1).clamp(max=n_in - 1)
    out = x[..., i0] * (1 - t) + x[..., i1] * t
    return out.movedim(-1, axis)


# ------------------------------------------------------------------------------------------- blocks


def _cip(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    """ReflectionPad(1) -> Conv3x3 -> InstanceNorm (no affine) -> PReLU: four Sequential slots."""
    return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3, stride), nn.InstanceNorm2d(cout), nn.PReLU()]


class ResidualBlock(nn.Module):
    def __init__(self, ch: int = 256) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(ch, ch, 3)
        self.prelu = nn.PReLU()  # the official block applies this single PReLU twice
        self.conv2 = nn.Conv2d(ch, ch, 3)
        self.norm = nn.InstanceNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.prelu(self.norm(self.conv1(self.pad(x))))
        out = self.norm(self.conv2(self.pad(out)))
        return self.prelu(out + x)


def feature_normalize(x: torch.Tensor) -> torch.Tensor:
    return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + _EPS)


# ------------------------------------------------------------------------------------------ networks


class VGG19Conv(nn.Module):
    """Caffe VGG-19 convolutions (``vgg19_conv.pth``). Returns relu2_2, relu3_2, relu4_2, relu5_2.

    conv5_3/conv5_4 exist for strict loading but are never run: nothing reads them.
    """

    _BLOCKS = ((3, 64, 2), (64, 128, 2), (128, 256, 4), (256, 512, 4), (512, 512, 4))

    def __init__(self) -> None:
        super().__init__()
        for b, (cin, cout, n) in enumerate(self._BLOCKS, start=1):
            for i in range(1, n + 1):
                setattr(self, f"conv{b}_{i}", nn.Conv2d(cin if i == 1 else cout, cout, 3, padding=1))

    @staticmethod
    def preprocess(rgb: torch.Tensor) -> torch.Tensor:
        """sRGB [0, 1] (B, 3, H, W) -> BGR, Caffe mean removed, x255."""
        mean = torch.tensor(_VGG_MEAN_BGR, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
        return (rgb.flip(1) - mean) * 255

    def _run(self, x: torch.Tensor, *names: str) -> torch.Tensor:
        for name in names:
            x = F.relu(getattr(self, name)(x))
        return x

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self._run(self.preprocess(rgb), "conv1_1", "conv1_2")
        r22 = self._run(F.max_pool2d(x, 2, 2), "conv2_1", "conv2_2")
        r32 = self._run(F.max_pool2d(r22, 2, 2), "conv3_1", "conv3_2")
        x = self._run(r32, "conv3_3", "conv3_4")
        r42 = self._run(F.max_pool2d(x, 2, 2), "conv4_1", "conv4_2")
        x = self._run(r42, "conv4_3", "conv4_4")
        r52 = self._run(F.max_pool2d(x, 2, 2), "conv5_1", "conv5_2")
        return r22, r32, r42, r52


class WarpNet(nn.Module):
    """Correspondence net (``nonlocal_net_iter_76000.pth``): VGG features -> 256-d features at 1/4."""

    def __init__(self) -> None:
        super().__init__()
        up = nn.Upsample(scale_factor=2)
        self.layer2_1 = nn.Sequential(*_cip(128, 128), *_cip(128, 64, stride=2))
        self.layer3_1 = nn.Sequential(*_cip(256, 128), *_cip(128, 64))
        self.layer4_1 = nn.Sequential(*_cip(512, 256), *_cip(256, 64), up)
        self.layer5_1 = nn.Sequential(*_cip(512, 256), up, *_cip(256, 64), up)
        self.layer = nn.Sequential(ResidualBlock(256), ResidualBlock(256), ResidualBlock(256))
        self.theta = nn.Conv2d(256, 256, 1)
        self.phi = nn.Conv2d(256, 256, 1)

    def features(self, r22, r32, r42, r52) -> torch.Tensor:
        x2 = self.layer2_1(feature_normalize(r22))
        x3 = self.layer3_1(feature_normalize(r32))
        x4 = self.layer4_1(feature_normalize(r42))
        x5 = self.layer5_1(feature_normalize(r52))
        if x5.shape[2] != x2.shape[2] or x5.shape[3] != x2.shape[3]:
            x5 = F.pad(x5, (0, 0, 1, 1), "replicate")
        return self.layer(torch.cat((x2, x3, x4, x5), dim=1))

    @staticmethod
    def embed(conv: nn.Conv2d, feat: torch.Tensor) -> torch.Tensor:
        """theta/phi: 1x1 conv, centred over positions, L2-normalised over channels -> (B, 256, N)."""
        x = conv(feat).flatten(2)
        x = x - x.mean(dim=-1, keepdim=True)
        return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + _EPS)


class ColorVidNet(nn.Module):
    """Colorization net (``colornet_iter_76000.pth``): 7 channels -> ab = tanh * 128."""

    def __init__(self, cin: int = 7) -> None:
        super().__init__()
        c = lambda i, o, d=1: nn.Conv2d(i, o, 3, padding=d, dilation=d)  # noqa: E731
        self.conv1_1 = nn.Sequential(c(cin, 32), nn.ReLU(), c(32, 64))
        self.conv1_2 = c(64, 64)
        self.conv1_2norm_ss = nn.Conv2d(64, 64, 1, 2, bias=False, groups=64)
        self.conv2_1, self.conv2_2 = c(64, 128), c(128, 128)
        self.conv2_2norm_ss = nn.Conv2d(128, 128, 1, 2, bias=False, groups=128)
        self.conv3_1, self.conv3_2, self.conv3_3 = c(128, 256), c(256, 256), c(256, 256)
        self.conv3_3norm_ss = nn.Conv2d(256, 256, 1, 2, bias=False, groups=256)
        self.conv4_1, self.conv4_2, self.conv4_3 = c(256, 512), c(512, 512), c(512, 512)
        self.conv5_1, self.conv5_2, self.conv5_3 = c(512, 512, 2), c(512, 512, 2), c(512, 512, 2)
        self.conv6_1, self.conv6_2, self.conv6_3 = c(512, 512, 2), c(512, 512, 2), c(512, 512, 2)
        self.conv7_1, self.conv7_2, self.conv7_3 = c(512, 512), c(512, 512), c(512, 512)
        self.conv8_1 = nn.Sequential(nn.Upsample(scale_factor=2), c(512, 256))
        self.conv3_3_short = c(256, 256)
        self.conv8_2, self.conv8_3 = c(256, 256), c(256, 256)
        self.conv9_1 = nn.Sequential(nn.Upsample(scale_factor=2), c(256, 128))
        self.conv2_2_short = c(128, 128)
        self.conv9_2 = c(128, 128)
        self.conv10_1 = nn.Sequential(nn.Upsample(scale_factor=2), c(128, 128))
        self.conv1_2_short = c(64, 128)
        self.conv10_2 = c(128, 128)
        self.conv10_ab = nn.Conv2d(128, 2, 1)

    @staticmethod
    def _stage(x: torch.Tensor, *convs: nn.Module) -> torch.Tensor:
        for conv in convs:
            x = F.relu(conv(x))
        return F.instance_norm(x)

    @staticmethod
    def _subsample(x: torch.Tensor, ss: nn.Conv2d) -> torch.Tensor:
        """The official ``*norm_ss`` layers (depthwise 1x1, stride 2, no bias): one product per value."""
        return x[:, :, ::2, ::2] * ss.weight.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n1 = self._stage(F.relu(self.conv1_1(x)), self.conv1_2)
        n2 = self._stage(self._subsample(n1, self.conv1_2norm_ss), self.conv2_1, self.conv2_2)
        n3 = self._stage(self._subsample(n2, self.conv2_2norm_ss), self.conv3_1, self.conv3_2, self.conv3_3)
        x = self._stage(self._subsample(n3, self.conv3_3norm_ss), self.conv4_1, self.conv4_2, self.conv4_3)
        x = self._stage(x, self.conv5_1, self.conv5_2, self.conv5_3)
        x = self._stage(x, self.conv6_1, self.conv6_2, self.conv6_3)
        x = self._stage(x, self.conv7_1, self.conv7_2, self.conv7_3)
        x = F.relu(upsample2_conv3(x, self.conv8_1[1]) + self.conv3_3_short(n3))
        x = self._stage(x, self.conv8_2, self.conv8_3)
        x = F.relu(upsample2_conv3(x, self.conv9_1[1]) + self.conv2_2_short(n2))
        x = self._stage(x, self.conv9_2)
        x = F.relu(upsample2_conv3(x, self.conv10_1[1]) + self.conv1_2_short(n1))
        x = F.leaky_relu(self.conv10_2(x), 0.2)
        ab = torch.einsum("nchw,oc->nohw", x, self.conv10_ab.weight[:, :, 0, 0])
        return torch.tanh(ab + self.conv10_ab.bias.view(1, -1, 1, 1)) * 128


def upsample2_conv3(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(Upsample(scale_factor=2, mode="nearest")(x))`` for a 3x3, padding-1 conv, at 4/9 of the cost.

    After a nearest x2 upsampling, output row 2i sees input rows i-1 (kernel row 0) and i (rows 1
    and 2); output row 2i+1 sees rows i (kernel rows 0 and 1) and i+1 (row 2); the same for
    columns. That is a stride-2 transposed conv with the 4x4 kernel whose taps along each axis are
    (w2, w1+w2, w0+w1, w0): the same products, summed in another order (float32 rounding only).
    The zero padding of the upsampled map is the zero padding of x.
    """
    w = conv.weight
    k = torch.stack((w[:, :, 2], w[:, :, 1] + w[:, :, 2], w[:, :, 0] + w[:, :, 1], w[:, :, 0]), 2)
    k = torch.stack((k[..., 2], k[..., 1] + k[..., 2], k[..., 0] + k[..., 1], k[..., 0]), 3)
    return F.conv_transpose2d(x, k.transpose(0, 1), conv.bias, stride=2, padding=1)


# -------------------------------------------------------------------------------- correspondence


def warp_reference(theta: torch.Tensor, phi: torch.Tensor, ref_pooled: torch.Tensor,
                   temperature: float = TEMPERATURE, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard-attention warp of the reference's pooled Lab onto the frames' positions.

    theta (B, C, N) frames and phi (1, C, M) reference, both centred and normalised (float32);
    ref_pooled (M, 3). Returns warped Lab (B, N, 3) and similarity (B, N).

    ``softmax(f / 1e-10)`` underflows to an exact one-hot except where the largest values of
    ``f / 1e-10`` tie, so an argmax gives the official values; rows with a tie (the top two equal
    after the division) get the official softmax. Queries are
    processed in chunks so memory stays O(chunk * M) instead of the official O(N * M).
    """
    b, _, n = theta.shape
    warped = theta.new_empty(b, n, 3)
    sim = theta.new_empty(b, n)
    phi0 = phi[0]
    for i in range(b):
        for q0 in range(0, n, chunk):
            f = theta[i, :, q0:q0 + chunk].transpose(0, 1) @ phi0  # (q, M) cosine similarities
            top, idx = f.topk(2, dim=-1) if f.shape[1] > 1 else f.max(dim=-1, keepdim=True)
            sim[i, q0:q0 + chunk] = top[:, 0]
            y = ref_pooled[idx[:, 0]]
            if top.shape[1] > 1:
                # only where the two largest coincide after the official division can weight be shared
                tied = top[:, 0] / temperature == top[:, 1] / temperature
                if bool(tied.any()):
                    y[tied] = torch.softmax(f[tied] / temperature, dim=-1) @ ref_pooled
            warped[i, q0:q0 + chunk] = y
    return warped, sim


# ---------------------------------------------------------------------------------- stream model

DEVC_INFO = ModelInfo(
    name="devc",
    summary="official Deep Exemplar-based Video Colorization checkpoints (user-supplied, --weights DIR)",
    paper="Zhang et al., Deep Exemplar-based Video Colorization, CVPR 2019",
    needs_reference=True,
    weights_file=None,
    size_multiple=16,
    default_render_size=432,  # the official image_size 432x768; the networks run at 216x384
    extra={"weights_env": WEIGHTS_ENV, "files": tuple(CHECKPOINT_FILES.values()), "source": OFFICIAL_RELEASES},
)


class DEVCColorizer(StreamColorizer):
    """Recurrent exemplar colorizer with the official DEVC networks.

    push(index, l): l (1, H, W), L 0..100, the official ``image_size`` picture (H, W even; the
    networks run at (H/2, W/2), padded internally to multiples of (8, 16) when needed).
    Returns ab (1, 2, H, W) after the official post-processing (see the module docstring).

    Options: ``smoother`` (official fast global smoother, default on), ``saturation_boost``
    (official x1.25, default on), ``crop_reference`` (official scale-to-cover + centre crop of the
    reference to the frame's shape, default on; off keeps the reference's aspect), ``propagate``
    (the reference is a coloured first frame of the shot: it also seeds the recurrence, as the
    official ``--frame_propagate``), ``batch_size`` (frames whose VGG/correspondence run together;
    outputs are then held back by up to ``batch_size - 1`` frames), ``smoother_backend``
    ("auto", "opencv", "numpy"), ``resize`` (the reference's CenterPad resizer, see :func:`center_pad`).
    """

    info = DEVC_INFO

    def __init__(self, vgg: VGG19Conv, warpnet: WarpNet, colornet: ColorVidNet, *,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 smoother: bool = True, saturation_boost: bool = True, crop_reference: bool = True,
                 propagate: bool = False, batch_size: int = 1, smoother_backend: str = "auto",
                 resize=None, channels_last: bool = False) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.device = torch.device(device)
        self.dtype = dtype
        self.vgg, self.warpnet, self.colornet = (
            m.to(self.device, dtype).eval().requires_grad_(False) for m in (vgg, warpnet, colornet))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        for m in (self.vgg, self.warpnet, self.colornet):
            m.to(memory_format=self.memory_format)
        self.smoother = smoother
        self.boost = SATURATION_BOOST if saturation_boost else 1.0
        self.crop_reference = crop_reference
        self.propagate = propagate
        self.batch_size = batch_size
        self.smoother_backend = smoother_backend
        self.resize = resize  # CenterPad's resizer (None: torch port of skimage's; see center_pad)
        self.weights_files: dict[str, dict] = {}
        self._ref_lab: torch.Tensor | None = None
        self._ref_cache: tuple[tuple[int, int], dict] | None = None
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._last: torch.Tensor | None = None

    # -- reference

    def set_reference(self, ref_lab: torch.Tensor) -> None:
        if not isinstance(ref_lab, torch.Tensor) or ref_lab.dim() != 4 or ref_lab.shape[:2] != (1, 3):
            raise ValueError(f"reference must be Lab (1, 3, H, W), got {getattr(ref_lab, 'shape', ref_lab)}")
        self._ref_lab = ref_lab.detach().to("cpu", torch.float32)
        self._ref_cache = None

    def _reference_size(self, work: tuple[int, int]) -> tuple[int, int]:
        if self.crop_reference:
            return work
        _, _, hr, wr = self._ref_lab.shape
        scale = math.sqrt(work[0] * work[1] / (hr * wr))
        return max(MIN_WORK, round(hr * scale / 8) * 8), max(MIN_WORK, round(wr * scale / 16) * 16)

    def _reference(self, work: tuple[int, int]) -> dict:
        """Everything about the reference that does not depend on the frame, once per reference."""
        if self._ref_lab is None:
            raise ValueError("model 'devc' needs a reference image: call set_reference() first")
        if self._ref_cache is not None and self._ref_cache[0] == work:
            return self._ref_cache[1]
        h, w = self._reference_size(work)
        # the official code reads the still as uint8 RGB; the runner's Lab maps back to those bytes
        rgb_u8 = (lab_to_rgb(self._ref_lab.double())[0] * 255).round().clamp(0, 255).to(torch.uint8)
        big = center_pad(rgb_u8.permute(1, 2, 0).numpy(), (2 * h, 2 * w), self.resize)
        lab_large = official_rgb_to_lab(torch.from_numpy(big))[None].to(self.device)
        lab_large[:, :1] -= 50
        ib_lab = F.interpolate(lab_large, size=(h, w), mode="bilinear", align_corners=False)
        feats = self._features(tensor_lab2rgb(torch.cat((ib_lab[:, :1] + 50, ib_lab[:, 1:]), 1)))
        phi = WarpNet.embed(self.warpnet.phi, feats).float()
        pooled = F.avg_pool2d(ib_lab, 4).flatten(2)[0].transpose(0, 1).contiguous()
        ref = {"phi": phi, "pooled": pooled, "ib_lab": ib_lab}
        self._ref_cache = (work, ref)
        return ref

    # -- networks

    def _features(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.warpnet.features(*self.vgg(rgb.to(self.dtype).contiguous(memory_format=self.memory_format)))

    def _correspond(self, ia_l: torch.Tensor, ref: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Grey frames (B, 1, h, w) L-50 -> warped Lab (B, 3, h, w), similarity (B, 1, h, w)."""
        b, _, h, w = ia_l.shape
        feats = self._features(((ia_l + 50) / 100).expand(b, 3, h, w))
        theta = WarpNet.embed(self.warpnet.theta, feats).float()
        warped, sim = warp_reference(theta, ref["phi"], ref["pooled"])
        warped = warped.transpose(1, 2).reshape(b, 3, h // 4, w // 4)
        sim = sim.reshape(b, 1, h // 4, w // 4)
        return F.interpolate(warped, scale_factor=4), F.interpolate(sim, scale_factor=4)

    def _colorize(self, ia_l: torch.Tensor, warped: torch.Tensor, sim: torch.Tensor,
                  last: torch.Tensor) -> torch.Tensor:
        x = torch.cat((ia_l, warped[:, 1:3], sim, last), dim=1)
        return self.colornet(x.to(self.dtype).contiguous(memory_format=self.memory_format)).float()

    def _postprocess(self, ab: torch.Tensor, l_large_c: torch.Tensor) -> torch.Tensor:
        """ab (1, 2, h, w) at network size -> (1, 2, H, W): bilinear up, x1.25, smoother."""
        size = l_large_c.shape[-2:]
        ab_up = F.interpolate(ab, size=size, mode="bilinear", align_corners=False) * self.boost
        if not self.smoother:
            return ab_up
        guide = ((l_large_c[0, 0] + 50.0) * 255 / 100).clamp(0, 255).to(torch.uint8).cpu().numpy()
        out = fast_global_smoother(guide, ab_up[0].cpu().numpy(), backend=self.smoother_backend)
        return torch.from_numpy(out)[None].to(ab.device)

    # -- stream interface

    def push(self, index: int, l: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        if not isinstance(l, torch.Tensor) or l.dim() != 3 or l.shape[0] != 1:
            raise ValueError(f"push expects L as (1, H, W), got {getattr(l, 'shape', l)}")
        h, w = l.shape[1] // 2, l.shape[2] // 2
        if h + (-h) % 8 < MIN_WORK or w + (-w) % 16 < MIN_WORK:  # VGG's stride-16 map must be >= 2x2
            raise ValueError(f"frame too small for DEVC: {tuple(l.shape[1:])}; need at least 50x34 (HxW)")
        if self._pending and self._pending[0][1].shape != l.shape:
            raise ValueError("frame size changed inside a stream; call flush() and reset() first")
        self._pending.append((index, l))
        return self._run() if len(self._pending) >= self.batch_size else []

    def flush(self) -> list[tuple[int, torch.Tensor]]:
        return self._run() if self._pending else []

    def reset(self) -> None:
        self._pending.clear()
        self._last = None

    @torch.inference_mode()
    def _run(self) -> list[tuple[int, torch.Tensor]]:
        pending, self._pending = self._pending, []
        l_large_c = torch.stack([l for _, l in pending]).to(self.device, torch.float32) - 50
        big_h, big_w = l_large_c.shape[-2:]
        h, w = big_h // 2, big_w // 2
        hp, wp = h + (-h) % 8, w + (-w) % 16
        ia_l = F.interpolate(l_large_c, size=(h, w), mode="bilinear", align_corners=False)
        if (hp, wp) != (h, w):  # sizes the official code refuses: pad, crop the result
            ia_l = F.pad(ia_l, (0, wp - w, 0, hp - h), mode="replicate")
        ref = self._reference((hp, wp))
        warped, sim = self._correspond(ia_l, ref)
        out = []
        for k, (index, _) in enumerate(pending):
            last = self._last
            if last is None:
                last = ref["ib_lab"] if self.propagate else torch.zeros_like(ia_l[:1]).expand(1, 3, hp, wp)
                if last.shape[-2:] != (hp, wp):
                    last = F.interpolate(last, size=(hp, wp), mode="bilinear", align_corners=False)
            ab = self._colorize(ia_l[k:k + 1], warped[k:k + 1], sim[k:k + 1], last)
            self._last = torch.cat((ia_l[k:k + 1], ab), dim=1)
            out.append((index, self._postprocess(ab[..., :h, :w], l_large_c[k:k + 1])))
        return out

    def reference_score(self, l: torch.Tensor, ref_lab: torch.Tensor) -> float:
        """Mean best cosine similarity between a grey frame (1, H, W) and a reference."""
        saved = self._ref_lab, self._ref_cache
        try:
            self.set_reference(ref_lab)
            with torch.inference_mode():
                l_c = l[None].to(self.device, torch.float32) - 50
                h, w = l.shape[-2] // 2, l.shape[-1] // 2
                h, w = h - h % 8, w - w % 16
                ia_l = F.interpolate(l_c, size=(h, w), mode="bilinear", align_corners=False)
                _, sim = self._correspond(ia_l, self._reference((h, w)))
            return float(sim.mean())
        finally:
            self._ref_lab, self._ref_cache = saved


# ------------------------------------------------------------------------------------------ weights


def _find_file(root: Path, name: str) -> Path | None:
    # a flat folder, or an unpacked official repository (data/, checkpoints/video_moredata_l1/)
    for sub in ("", "data", "checkpoints/video_moredata_l1"):
        p = root / sub / name
        if p.is_file():
            return p
    return None


def resolve_weights_dir(weights: str | Path | None) -> dict[str, Path]:
    """The three official files, from ``weights`` or ``$COLORIZE_DEVC_WEIGHTS``; WeightsError if not."""
    files = ", ".join(CHECKPOINT_FILES.values())
    where = (f"The official project ({OFFICIAL_REPO}) publishes them on its GitHub releases page: "
             f"{OFFICIAL_RELEASES}. colorize never downloads or ships them.")
    if weights is None:
        weights = os.environ.get(WEIGHTS_ENV) or None
    if weights is None:
        raise WeightsError(f"model 'devc' needs the official checkpoints: pass --weights DIR or set "
                           f"{WEIGHTS_ENV} to a folder holding {files}. {where}")
    root = Path(weights).expanduser()
    if not root.is_dir():
        raise WeightsError(f"--weights for 'devc' must be a folder holding {files}; {root} is not a folder. {where}")
    found = {ckpt: _find_file(root, name) for ckpt, name in CHECKPOINT_FILES.items()}
    missing = [CHECKPOINT_FILES[c] for c, p in found.items() if p is None]
    if missing:
        raise WeightsError(f"{root} lacks {', '.join(missing)} (expected: {files}). {where}")
    return found


def load_devc_networks(weights: str | Path | None) -> tuple[tuple[nn.Module, ...], dict[str, dict]]:
    """Build the three networks on CPU and load the user's files strictly (weights_only).

    Returns ((vgg, warpnet, colornet), provenance {file name: {path, sha256, sha256_verified}}).
    """
    paths = resolve_weights_dir(weights)
    nets = {"vgg19_conv": VGG19Conv(), "nonlocal_net": WarpNet(), "colornet": ColorVidNet(7)}
    provenance = {}
    for ckpt, path in paths.items():
        name = CHECKPOINT_FILES[ckpt]
        state, digest = load_state(path, KNOWN_SHA256.get(name))
        if not isinstance(state, dict):
            raise WeightsError(f"{path} is not a state_dict")
        load_into(nets[ckpt], state, path)
        provenance[name] = {"path": str(path.resolve()), "sha256": digest,
                            "sha256_verified": name in KNOWN_SHA256}
    return (nets["vgg19_conv"], nets["nonlocal_net"], nets["colornet"]), provenance


def combined_sha256(provenance: dict[str, dict]) -> str:
    """sha256 of the ``sha256sum``-style listing of the three files (one id for the set)."""
    listing = "".join(f"{provenance[n]['sha256']}  {n}\n" for n in CHECKPOINT_FILES.values())
    return hashlib.sha256(listing.encode()).hexdigest()


@register_model(DEVC_INFO)
def devc(device: torch.device, dtype: torch.dtype = torch.float32, weights: str | Path | None = None, *,
         smoother: bool = True, saturation_boost: bool = True, crop_reference: bool = True,
         propagate: bool = False, batch_size: int | None = None, smoother_backend: str = "auto",
         resize=None, channels_last: bool = False) -> DEVCColorizer:
    """The official checkpoints from ``weights`` (a folder) or ``$COLORIZE_DEVC_WEIGHTS``.

    The options are :class:`DEVCColorizer`'s, spelled out so that the registry can tell which
    options this model takes (:func:`colorize.models.registry.model_options`).
    ``batch_size=None``: 4 on CUDA, 1 elsewhere.
    """
    (vgg, warpnet, colornet), provenance = load_devc_networks(weights)
    if batch_size is None:
        batch_size = 4 if torch.device(device).type == "cuda" else 1
    model = DEVCColorizer(vgg, warpnet, colornet, device=device, dtype=dtype, smoother=smoother,
                          saturation_boost=saturation_boost, crop_reference=crop_reference,
                          propagate=propagate, batch_size=batch_size, smoother_backend=smoother_backend,
                          resize=resize, channels_last=channels_last)
    model.weights_files = provenance
    model.weights_sha256 = combined_sha256(provenance)
    return model
