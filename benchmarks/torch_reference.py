"""PyTorch equivalents of jaxplastic's ResNet-18, GRNN and front-ends (benchmarks and tests only).

The modules mirror jaxplastic.models layer for layer, so weights copied from Flax
(`load_resnet_from_flax`, `load_grnn_from_flax`) give the same function; tests check this.
`TorchLoopGRNN` is the authors' style of recurrence: a Python loop over time steps calling a
GRUCell per layer per step. Library code never imports this file.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from jaxplastic import frontends


# ---------------------------------------------------------------------------------------------
# Front-ends (torch.stft based; same definitions as jaxplastic.frontends).


class TorchLogMel(nn.Module):
  """[B, T] audio -> [B, n_mels, num_frames]: Mel power, dB, pad/crop, per-utterance z-norm."""

  def __init__(self, sample_rate: int = 16000, n_fft: int = 1024, hop_length: int = 512,
               n_mels: int = 64, num_frames: int = 224, eps: float = 1e-6, htk: bool = False,
               mel_norm: str | None = "slaney"):
    super().__init__()
    self.n_fft, self.hop_length, self.num_frames, self.eps = n_fft, hop_length, num_frames, eps
    fbank = frontends.mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels,
                                     htk=htk, norm=mel_norm)
    self.register_buffer("fbank", torch.tensor(fbank.T, dtype=torch.float32))
    self.register_buffer("window", torch.hann_window(n_fft))

  def forward(self, audio: torch.Tensor) -> torch.Tensor:
    spec = torch.stft(audio, self.n_fft, self.hop_length, window=self.window, center=True,
                      pad_mode="reflect", return_complex=True)
    power = spec.real.square() + spec.imag.square()  # [B, bins, frames]
    db = 10.0 * torch.log10(torch.clamp(self.fbank @ power, min=1e-10))
    frames = db.shape[-1]
    if frames < self.num_frames:
      db = nn.functional.pad(db, (0, self.num_frames - frames))
    else:
      db = db[..., :self.num_frames]
    mean = db.mean(dim=(1, 2), keepdim=True)
    std = db.std(dim=(1, 2), keepdim=True, unbiased=False)
    return (db - mean) / (std + self.eps)


class TorchLinearCepstrum(nn.Module):
  """[B, T] audio -> [B, frames, num_coeffs]: log(|STFT|^2 + 1e-6) -> orthonormal DCT-II."""

  def __init__(self, n_fft: int = 1024, hop_length: int = 512, num_coeffs: int = 20):
    super().__init__()
    self.n_fft, self.hop_length = n_fft, hop_length
    dct = frontends.dct_matrix(n_fft // 2 + 1, num_coeffs)
    self.register_buffer("dct", torch.tensor(dct, dtype=torch.float32))
    self.register_buffer("window", torch.hann_window(n_fft))

  def forward(self, audio: torch.Tensor) -> torch.Tensor:
    spec = torch.stft(audio, self.n_fft, self.hop_length, window=self.window, center=True,
                      pad_mode="reflect", return_complex=True)
    power = (spec.real.square() + spec.imag.square()).transpose(1, 2)  # [B, frames, bins]
    return torch.log(power + 1e-6) @ self.dct


# ---------------------------------------------------------------------------------------------
# ResNet-18.


class TorchBasicBlock(nn.Module):
  """Same block as jaxplastic.models.resnet.BasicBlock (projection iff strided, or `project`)."""

  def __init__(self, in_width: int, inner_width: int, out_width: int, stride: int,
               project: bool | None = None):
    super().__init__()
    self.out_width = out_width
    self.conv1 = nn.Conv2d(in_width, inner_width, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(inner_width)
    self.conv2 = nn.Conv2d(inner_width, out_width, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(out_width)
    self.shortcut = None
    if (stride != 1) if project is None else project:
      self.shortcut = nn.Sequential(nn.Conv2d(in_width, out_width, 1, stride, bias=False),
                                    nn.BatchNorm2d(out_width))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = torch.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    if self.shortcut is not None:
      x = self.shortcut(x)
    elif x.shape[1] != self.out_width:
      c = x.shape[1]
      x = (nn.functional.pad(x, (0, 0, 0, 0, 0, self.out_width - c)) if c < self.out_width
           else x[:, :self.out_width])
    return torch.relu(x + y)


class TorchResNet18(nn.Module):
  """ResNet-18 on a 1-channel spectrogram; `forward` takes raw audio when `frontend` is set.

  `branch_widths` adds the authors' parallel dropin blocks (`branches[i]`, None where 0): a
  projected BasicBlock beside stage i reading its input, concatenated after its output.
  """

  def __init__(self, num_classes: int = 2, stage_widths: Sequence[int] = (64, 128, 256, 512),
               block_widths: Sequence[int] | None = None,
               blocks_per_stage: Sequence[int] = (2, 2, 2, 2), stem_width: int = 64,
               frontend: nn.Module | None = None,
               branch_widths: Sequence[int] | None = None):
    super().__init__()
    self.frontend = frontend
    self.stem = nn.Sequential(nn.Conv2d(1, stem_width, 7, 2, 3, bias=False),
                              nn.BatchNorm2d(stem_width), nn.ReLU(),
                              nn.MaxPool2d(3, 2, 1))
    if block_widths is None:
      block_widths = [w for w, n in zip(stage_widths, blocks_per_stage) for _ in range(n)]
    branch_widths = branch_widths or [0] * len(stage_widths)
    inner = iter(block_widths)
    stages, branches, in_width = [], [], stem_width
    for i, (width, n, b) in enumerate(zip(stage_widths, blocks_per_stage, branch_widths)):
      stride = 1 if i == 0 else 2
      branches.append(TorchBasicBlock(in_width, b, b, stride, project=True) if b else None)
      blocks = []
      for j in range(n):
        blocks.append(TorchBasicBlock(in_width, next(inner), width, stride if j == 0 else 1))
        in_width = width
      in_width += b
      stages.append(nn.Sequential(*blocks))
    self.stages = nn.Sequential(*stages)
    self.branches = nn.ModuleList(branches)
    self.head = nn.Linear(in_width, num_classes)
    for m in self.modules():
      if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.frontend is not None:
      x = self.frontend(x)[:, None]
    x = self.stem(x)
    for stage, branch in zip(self.stages, self.branches):
      x = stage(x) if branch is None else torch.cat([stage(x), branch(x)], dim=1)
    return self.head(x.mean(dim=(2, 3)))


def _t(x: Any) -> torch.Tensor:
  return torch.tensor(np.asarray(x, dtype=np.float32))


def load_resnet_from_flax(model: TorchResNet18, variables: Mapping[str, Any]) -> TorchResNet18:
  """Copies Flax ResNet18 variables ({'params', 'batch_stats'}) into `model` in place."""
  params, stats = variables["params"], variables["batch_stats"]

  def conv(m: nn.Conv2d, p):
    m.weight.data = _t(p["kernel"]).permute(3, 2, 0, 1).contiguous()

  def bn(m: nn.BatchNorm2d, p, s):
    m.weight.data, m.bias.data = _t(p["scale"]), _t(p["bias"])
    m.running_mean.data, m.running_var.data = _t(s["mean"]), _t(s["var"])

  conv(model.stem[0], params["stem"]["conv"])
  bn(model.stem[1], params["stem"]["bn"], stats["stem"]["bn"])
  blocks = [(block, params[f"stage{i + 1}"][f"block{j + 1}"],
             stats[f"stage{i + 1}"][f"block{j + 1}"])
            for i, stage in enumerate(model.stages) for j, block in enumerate(stage)]
  blocks += [(branch, params[f"branch{i + 1}"], stats[f"branch{i + 1}"])
             for i, branch in enumerate(model.branches) if branch is not None]
  for block, p, s in blocks:
    conv(block.conv1, p["conv1"])
    bn(block.bn1, p["bn1"], s["bn1"])
    conv(block.conv2, p["conv2"])
    bn(block.bn2, p["bn2"], s["bn2"])
    if block.shortcut is not None:
      conv(block.shortcut[0], p["shortcut_conv"])
      bn(block.shortcut[1], p["shortcut_bn"], s["shortcut_bn"])
  model.head.weight.data = _t(params["head"]["kernel"]).T.contiguous()
  model.head.bias.data = _t(params["head"]["bias"])
  return model


# ---------------------------------------------------------------------------------------------
# GRNN.


class TorchGRNN(nn.Module):
  """Stacked torch.nn.GRU layers (fused kernels), final hidden state -> Linear."""

  def __init__(self, num_classes: int = 2, hidden_sizes: Sequence[int] = (64, 64, 32, 32),
               input_size: int = 20, frontend: nn.Module | None = None):
    super().__init__()
    self.frontend = frontend
    sizes = [input_size, *hidden_sizes]
    self.grus = nn.ModuleList(nn.GRU(a, b, batch_first=True) for a, b in zip(sizes, sizes[1:]))
    self.head = nn.Linear(sizes[-1], num_classes)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.frontend is not None:
      x = self.frontend(x)
    for gru in self.grus:
      x, _ = gru(x)
    return self.head(x[:, -1])


class TorchAuthorsGRUCell(nn.Module):
  """The authors' GRU cell, one nn.Linear per gate and side (GRNN(cell="authors")):

  r = sigmoid(W_r x + U_r h), z = sigmoid(W_z x + U_z h), n = tanh(W_n x + U_n (r * h)),
  h' = (1 - z) * h + z * n.
  """

  def __init__(self, input_size: int, hidden_size: int):
    super().__init__()
    self.hidden_size = hidden_size
    self.input = nn.ModuleDict({g: nn.Linear(input_size, hidden_size) for g in "rzn"})
    self.hidden = nn.ModuleDict({g: nn.Linear(hidden_size, hidden_size) for g in "rzn"})

  def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    r = torch.sigmoid(self.input["r"](x) + self.hidden["r"](h))
    z = torch.sigmoid(self.input["z"](x) + self.hidden["z"](h))
    n = torch.tanh(self.input["n"](x) + self.hidden["n"](r * h))
    return (1 - z) * h + z * n


class TorchLoopGRNN(nn.Module):
  """The authors' style: a Python loop over time, one cell call per layer per step.

  `cell="pytorch"` uses nn.GRUCell, `cell="authors"` TorchAuthorsGRUCell.
  """

  def __init__(self, num_classes: int = 2, hidden_sizes: Sequence[int] = (64, 64, 32, 32),
               input_size: int = 20, frontend: nn.Module | None = None, cell: str = "pytorch"):
    super().__init__()
    self.frontend = frontend
    sizes = [input_size, *hidden_sizes]
    cell_cls = nn.GRUCell if cell == "pytorch" else TorchAuthorsGRUCell
    self.cells = nn.ModuleList(cell_cls(a, b) for a, b in zip(sizes, sizes[1:]))
    self.head = nn.Linear(sizes[-1], num_classes)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.frontend is not None:
      x = self.frontend(x)
    hs = [x.new_zeros(x.shape[0], c.hidden_size) for c in self.cells]
    for t in range(x.shape[1]):
      inp = x[:, t]
      for k, cell in enumerate(self.cells):
        hs[k] = cell(inp, hs[k])
        inp = hs[k]
    return self.head(hs[-1])


def load_grnn_from_flax(model: TorchGRNN | TorchLoopGRNN,
                        params: Mapping[str, Any]) -> TorchGRNN | TorchLoopGRNN:
  """Copies Flax GRNN params into `model` in place (torch packs gates as rows r, z, n)."""
  layers = model.grus if isinstance(model, TorchGRNN) else model.cells
  suffix = "_l0" if isinstance(model, TorchGRNN) else ""
  for k, layer in enumerate(layers):
    p = params[f"gru{k + 1}"]
    if isinstance(layer, TorchAuthorsGRUCell):
      for side in ("input", "hidden"):
        for g in ("r", "z", "n"):
          linear = getattr(layer, side)[g]
          linear.weight.data = _t(p[f"{side}_{g}"]["kernel"]).T.contiguous()
          linear.bias.data = _t(p[f"{side}_{g}"]["bias"])
      continue
    for side, short in (("input", "ih"), ("hidden", "hh")):
      w = torch.cat([_t(p[f"{side}_{g}"]["kernel"]).T for g in ("r", "z", "n")], dim=0)
      b = torch.cat([_t(p[f"{side}_{g}"]["bias"]) for g in ("r", "z", "n")], dim=0)
      getattr(layer, f"weight_{short}{suffix}").data = w.contiguous()
      getattr(layer, f"bias_{short}{suffix}").data = b
  model.head.weight.data = _t(params["head"]["kernel"]).T.contiguous()
  model.head.bias.data = _t(params["head"]["bias"])
  return model
