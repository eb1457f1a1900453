"""EncNet context encoding module (Zhang et al., CVPR 2018) and its optional SE-loss head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .params import CHANNELS, int_param, validate_params
from .registry import register


def squared_distances(features: Tensor, codewords: Tensor) -> Tensor:
    """``||x_i - d_k||^2`` for ``features`` (B, N, C) and ``codewords`` (K, C): ``(B, N, K)``.

    Expanded as ``||x_i||^2 - 2 x_i . d_k + ||d_k||^2`` so that memory is O(B*N*K), never the
    O(B*N*K*C) of the direct difference.
    """
    feature_norms = features.pow(2).sum(dim=2, keepdim=True)  # (B, N, 1)
    codeword_norms = codewords.pow(2).sum(dim=1)  # (K,)
    return feature_norms - 2.0 * torch.matmul(features, codewords.t()) + codeword_norms


def aggregate_residuals(assignments: Tensor, features: Tensor, codewords: Tensor) -> Tensor:
    """``e_k = sum_i a_ik (x_i - d_k)`` for assignments (B, N, K): ``(B, K, C)``, without
    building the (B, N, K, C) residual tensor."""
    weighted_sum = torch.bmm(assignments.transpose(1, 2), features)  # (B, K, C)
    return weighted_sum - assignments.sum(dim=1).unsqueeze(2) * codewords


@register(
    "encoding",
    family="channel",
    paper="Zhang et al., Context Encoding for Semantic Segmentation, CVPR 2018",
    params=(int_param("codewords", 32, "number of codewords K", search=(8, 16, 32)),),
    train_batch1=True,
    notes="classification gate x * sigmoid(FC(e)); training needs B*H*W > 1 and B*C > 1",
)
class ContextEncoding(nn.Module):
    """EncNet context encoding module: a channel gate from a learned dictionary of codewords.

    Algorithm (as the authors' ``EncModule``): ``z = ReLU(BN(conv1x1_{C->C}(x)))``; with K
    codewords d_k and smoothing factors s_k, soft assignments
    ``a_ik = softmax_k(s_k * ||z_i - d_k||^2)`` over the N = H*W positions; residual encodings
    ``e_k = sum_i a_ik (z_i - d_k)``; ``e = mean_k ReLU(BN_K(e_k))`` (BatchNorm with one channel
    per codeword); ``gate = sigmoid(FC_{C->C}(e))``; ``out = x * gate``.
    Paper: Zhang et al., "Context Encoding for Semantic Segmentation", CVPR 2018.

    Choices: the gate is applied as ``x * gate`` (the classification variant the paper uses on
    CIFAR-10, which keeps an SE-like block); the segmentation EncNet instead outputs
    ``relu(x + x * gate)``. The 1x1 conv + BN + ReLU in front of the encoding layer is kept, as
    in the authors' module. Initialisation as the authors': ``d_k ~ U(-1/sqrt(KC), 1/sqrt(KC))``,
    ``s_k ~ U(-1, 0)``. e_k is a sum over positions (not a mean), so its scale follows H*W;
    the BatchNorm after it absorbs that for the training size.
    The semantic-encoding loss is optional and kept out of ``forward``: use
    :meth:`forward_with_encoding` to get ``(out, e)``, :class:`SELossHead` for class-presence
    logits and :func:`se_loss` for the loss (weighted 0.2 in the paper).

    Args:
        channels: number of input channels C.
        codewords: number of codewords K (paper: 32).

    No hidden width (every layer is C wide). Batch size 1: the 2D BatchNorm normalises over the
    B*H*W positions and the codeword BatchNorm over the B*C entries of each e_k, so training at
    batch 1 works unless the map is 1x1 (or C = 1), where a ``ValueError`` is raised; eval mode
    works everywhere.
    Parameters: ``C^2 + 2C`` (conv, BN) + ``KC + K`` (codewords, smoothing) + ``2K`` (codeword
    BN) + ``C^2 + C`` (FC) = ``2C^2 + 3C + KC + 3K``.
    """

    def __init__(self, channels: int, codewords: int = 32) -> None:
        super().__init__()
        self.channels = channels
        self.num_codewords = codewords
        self.project = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.project_bn = nn.BatchNorm2d(channels)
        self.codewords = nn.Parameter(torch.empty(codewords, channels))
        self.smoothing = nn.Parameter(torch.empty(codewords))
        self.encoding_bn = nn.BatchNorm1d(codewords)
        self.fc = nn.Linear(channels, channels)
        self.reset_codewords()

    def reset_codewords(self) -> None:
        """The authors' initialisation of the codewords and smoothing factors."""
        bound = 1.0 / math.sqrt(self.num_codewords * self.channels)
        nn.init.uniform_(self.codewords, -bound, bound)
        nn.init.uniform_(self.smoothing, -1.0, 0.0)

    def forward_with_encoding(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(x * gate, e)``: the block output and the encoded vector e of shape (B, C)."""
        batch, channels = x.shape[0], x.shape[1]
        if self.training and (batch * x.shape[2] * x.shape[3] == 1 or batch * channels == 1):
            raise ValueError(
                "encoding: training on a single 1x1 map (or a single channel) is not possible: "
                "its BatchNorms need more than one value per channel; use batch size >= 2 or "
                "eval mode"
            )
        projected = F.relu(self.project_bn(self.project(x)))
        features = projected.flatten(2).transpose(1, 2)  # (B, N, C)
        distances = squared_distances(features, self.codewords)
        assignments = torch.softmax(distances * self.smoothing, dim=2)
        residuals = aggregate_residuals(assignments, features, self.codewords)  # (B, K, C)
        encoded = F.relu(self.encoding_bn(residuals)).mean(dim=1)
        gate = torch.sigmoid(self.fc(encoded))
        return x * gate.unsqueeze(-1).unsqueeze(-1), encoded

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_encoding(x)[0]


_SE_LOSS_HEAD_PARAMS = (CHANNELS, int_param("num_classes", None, "number of classes"))


class SELossHead(nn.Module):
    """EncNet's semantic-encoding head: class-presence logits ``FC_{C->classes}(e)`` from the
    encoded vector e of :meth:`ContextEncoding.forward_with_encoding`. Parameters:
    ``C * classes + classes``."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        validate_params(
            "SELossHead", _SE_LOSS_HEAD_PARAMS, {"channels": channels, "num_classes": num_classes}
        )
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, encoded: Tensor) -> Tensor:
        return self.fc(encoded)


def class_presence(labels: Tensor, num_classes: int, ignore_index: int = -1) -> Tensor:
    """``(B, ...)`` integer labels -> ``(B, num_classes)`` float, 1 where the class occurs.

    A label map per sample for segmentation, or one label per sample for classification.
    Entries equal to ``ignore_index`` are skipped; any other label outside
    ``[0, num_classes)`` raises ``ValueError``.
    """
    flat = labels.reshape(labels.shape[0], -1).long()
    valid = flat != ignore_index
    if bool(((flat[valid] < 0) | (flat[valid] >= num_classes)).any()):
        raise ValueError(
            f"se_loss: labels must lie in [0, {num_classes}) or equal ignore_index="
            f"{ignore_index}; got values in [{int(flat.min())}, {int(flat.max())}]"
        )
    # Ignored entries go to an extra column that is dropped afterwards.
    index = torch.where(valid, flat, torch.full_like(flat, num_classes))
    presence = torch.zeros(flat.shape[0], num_classes + 1, device=labels.device)
    presence.scatter_(1, index, 1.0)
    return presence[:, :num_classes]


def se_loss(logits: Tensor, labels: Tensor, ignore_index: int = -1) -> Tensor:
    """Semantic-encoding loss: binary cross-entropy between the class-presence ``logits``
    (B, classes) of :class:`SELossHead` and the classes present in each sample's ``labels``.
    Unweighted; the paper adds it to the main loss with weight 0.2."""
    if logits.dim() != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"se_loss: logits must be (B, num_classes) with B = labels.shape[0]; got logits "
            f"{tuple(logits.shape)} and labels {tuple(labels.shape)}"
        )
    target = class_presence(labels, logits.shape[1], ignore_index).to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, target)
