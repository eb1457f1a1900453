"""Pretrained starts: load a backbone's weights, then start the inserted blocks as the identity.

:func:`read_state_dict` reads a weights file and :func:`load_backbone_state` loads it into a
backbone *before* attention is inserted (its keys are those of the plain backbone). The
classifier head may differ (another ``num_classes``): its weights are then skipped and it keeps
its fresh initialisation; every other missing or unexpected key, and every shape mismatch, is a
``ValueError`` naming the file and the first offending keys.

After insertion, :func:`identity_init` gives each block an initialisation under which it computes
``block(x) == x`` exactly, where its family has one, so the network starts as the pretrained one
did (at every position: the block is then the identity wherever it sits):

============  =========  ======================================================================
block         preserves  identity initialisation, or why there is none
============  =========  ======================================================================
none          yes        nothing is inserted
gc            yes        last transform conv ``fc2`` zero (weight and bias): ``x + 0``
non_local     yes        output BatchNorm gamma = beta = 0: ``x + BN(.) = x + 0``
gct           yes        gamma = beta = 0: gate ``1 + tanh(0) = 1``
se, eca, fca  no         ``x * sigmoid(.)``: a gate of exactly 1 needs an infinite logit; at a
                         finite init the gate is ~0.5, and a saturated one has no gradient
srm           no         as se; its zero ``cfc`` gives exactly ``x * 0.5``
gsop          no         as se (sigmoid gate from the covariance)
encoding      no         as se (sigmoid gate from the encoded vector)
cbam          no         two sigmoid gates (channel, spatial): ~0.25 at init
coord         no         two sigmoid gates (rows, columns): ~0.25 at init
bilinear      no         ``sigmoid(l * g)`` with ``l, g >= 0``: gate in [0.5, 1)
simam         no         parameter-free ``x * sigmoid(e)`` with ``e >= 0.5``: gate in [0.62, 1)
bam           no         ``x * (1 + sigmoid(.))``: gate in (1, 2), ~1.5 at init
============  =========  ======================================================================

Blocks that cannot preserve the function keep their own initialisation; :func:`preserves_function`
tells which is which. The hooks are keyed by the block's exact class, so a subclass that changes
the forward is not claimed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

import attn_blocks
from attn_blocks.gc import GlobalContext
from attn_blocks.gct import GatedChannelTransform
from attn_blocks.identity import NoAttention
from attn_blocks.non_local import NonLocal

logger = logging.getLogger(__name__)

#: How many offending keys an error message lists per kind.
_SHOWN_KEYS = 5

Pretrained = bool | str | os.PathLike


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The state dict in ``path``: a ``torch.save``-d state dict, a dict holding one under
    ``"state_dict"`` (a Lightning checkpoint), or a ``.safetensors`` file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weights file {path!r} does not exist; pass the path of a state dict saved with "
            "torch.save(model.state_dict(), path)"
        )
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:
        raise ImportError(
            f"weights file {path!r} is a .safetensors file; install safetensors to read it "
            "(pip install safetensors)"
        ) from None
    except Exception as err:
        raise ValueError(
            f"weights file {path!r} could not be read ({type(err).__name__}: {err}); save it "
            "with torch.save(model.state_dict(), path)"
        ) from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(
            f"weights file {path!r} holds a {type(state).__name__}, not a state dict; save it "
            "with torch.save(model.state_dict(), path)"
        )
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise ValueError(
            f"weights file {path!r} is not a state dict: entries {bad[:_SHOWN_KEYS]} are not "
            "name -> tensor; save it with torch.save(model.state_dict(), path)"
        )
    return dict(state)


def load_backbone_state(
    model: nn.Module,
    state: Mapping[str, Tensor],
    *,
    source: str,
    backbone: str,
    head: Sequence[str],
) -> None:
    """Load ``state`` into the plain backbone ``model``, skipping the head where it differs.

    ``head`` lists the classifier's module paths (``("fc",)``): when any of their keys is
    missing, unexpected or of another shape (another ``num_classes``), all of them are skipped
    and the head keeps the initialisation it was built with. BatchNorm's ``num_batches_tracked``
    counters may be absent (older files); they then stay at zero. ``source`` names the weights
    in error messages (``weights file 'x.pt'``).
    """
    own = model.state_dict()
    prefixes = tuple(f"{path}." for path in head)

    def is_head(key: str) -> bool:
        return key.startswith(prefixes)

    missing = [
        k
        for k in own
        if k not in state and not is_head(k) and not k.endswith(".num_batches_tracked")
    ]
    unexpected = [k for k in state if k not in own and not is_head(k)]
    mismatched = [
        f"{k}: {tuple(state[k].shape)} in the weights, {tuple(own[k].shape)} in the model"
        for k in own
        if k in state and not is_head(k) and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        problems = [
            f"{what} {_first(keys)}"
            for what, keys in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", mismatched),
            )
            if keys
        ]
        raise ValueError(
            f"{source} does not fit backbone {backbone!r}: {'; '.join(problems)}. The weights "
            "must be the state dict of the same backbone without attention, built with the same "
            f"backbone_args and in_channels (only the classifier head {list(head)} may differ)"
        )
    own_head = {k for k in own if is_head(k)}
    state_head = {k for k in state if is_head(k)}
    head_fits = own_head == state_head and all(state[k].shape == own[k].shape for k in own_head)
    if not head_fits:
        logger.info("%s: classifier head %s skipped (it differs), re-initialised", source, head)
    model.load_state_dict(
        {k: v for k, v in state.items() if k in own and (head_fits or not is_head(k))},
        strict=False,
    )


def _first(keys: Sequence[str]) -> str:
    shown = list(keys[:_SHOWN_KEYS])
    more = len(keys) - len(shown)
    return f"{shown}" + (f" (+{more} more)" if more else "")


# --- identity initialisation of the inserted blocks ---------------------------------------------


def _nothing(block: nn.Module) -> None:
    """``none`` is the identity already."""


def _zero_gc_transform(block: GlobalContext) -> None:
    nn.init.zeros_(block.fc2.weight)
    nn.init.zeros_(block.fc2.bias)


def _zero_non_local_norm(block: NonLocal) -> None:
    nn.init.zeros_(block.norm.weight)
    nn.init.zeros_(block.norm.bias)


def _open_gct_gate(block: GatedChannelTransform) -> None:
    nn.init.zeros_(block.gamma)
    nn.init.zeros_(block.beta)


#: Block class -> the initialisation under which the block computes exactly ``x``.
IDENTITY_INITS: dict[type[nn.Module], Callable[[nn.Module], None]] = {
    NoAttention: _nothing,
    GlobalContext: _zero_gc_transform,
    NonLocal: _zero_non_local_norm,
    GatedChannelTransform: _open_gct_gate,
}


def preserves_function(block: str) -> bool:
    """Whether block ``block`` (a registered name) can start as the exact identity."""
    return attn_blocks.info(block).cls in IDENTITY_INITS


def identity_init(block: nn.Module) -> None:
    """Initialise ``block`` as the identity if its class has a hook; leave it as it is if not."""
    init = IDENTITY_INITS.get(type(block))
    if init is not None:
        init(block)
