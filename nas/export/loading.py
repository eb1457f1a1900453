"""Load an exported (or retrained) model folder back as an eager ``nn.Module``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from search_spaces.build import build_model
from search_spaces.spec import ArchSpec

from ..checkpoints import load_checkpoint


def load(path: str | Path) -> nn.Module:
    """The trained model in eval mode, from an export folder, its ``weights.pt``, a retrained
    ``weights.pt`` or a search checkpoint (``trial_<N>.pt``).

    The model is rebuilt from the stored ArchSpec and its weights are loaded strictly. It takes
    normalised input (``model.checkpoint_info`` holds the input shape, mean, std and class names,
    plus the study and trial it came from); ``model.arch_spec`` is its ArchSpec.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "weights.pt").is_file() and (path / "arch.json").is_file():
            raise FileNotFoundError(
                f"{path} holds an architecture without weights (arch.json only); train it with "
                "`nas train` first, then load its retrained/ folder"
            )
        path = path / "weights.pt"
    return _model_from_payload(load_checkpoint(path))


def _model_from_payload(payload: Mapping[str, Any]) -> nn.Module:
    # A fixed seed: the weights are overwritten, and the caller's RNG must not move.
    model = build_model(ArchSpec.from_dict(payload["arch"]), seed=0)
    model.load_state_dict(payload["state_dict"])
    model.checkpoint_info = {
        key: payload[key] for key in ("study", "trial", "input_shape", "class_names", "mean", "std")
    }
    return model.eval()
