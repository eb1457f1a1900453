"""Export trained trials of a study as self-contained model folders, and load them back.

:func:`export_trials` writes ``<out_dir>/trial_<N>/`` for each chosen trial (given numbers, or
the Pareto front) and lists them in ``<out_dir>/index.csv``:

* ``arch.json``: the :class:`~search_spaces.spec.ArchSpec` (rebuild with ``build_model``);
* ``weights.pt``: the trial's checkpoint (state dict, arch, input shape, class names,
  normalisation), loadable with ``torch.load(..., weights_only=True)`` and :func:`load`. It is
  downloaded from the study's artifact store (:mod:`nas.artifacts`), so any machine that reaches
  the storage and the store exports; studies of 0.1.0 read it from the training host's disk;
* ``model.onnx``: ONNX (opset :data:`ONNX_OPSET`, dynamic batch axis, input ``input``, output
  ``logits``);
* ``model.ts``: TorchScript (scripted, or traced where scripting fails; the card says which);
* ``config.json``: the study's ``data`` and ``training`` sections, to retrain the architecture
  (``nas.retrain``);
* ``model_card.md``: what the model is, its search-time metrics and costs, how to feed and load it.

Every export is verified before it is put in place: ONNX (onnxruntime, CPU), TorchScript and
:func:`load` must reproduce the eager model's logits on a random batch, or nothing is written.

Modules: :mod:`.trials` (choosing trials and writing their folders), :mod:`.formats` (ONNX and
TorchScript, verified), :mod:`.card` (costs, model card, index), :mod:`.loading` (:func:`load`).
"""

from search_spaces.ort_latency import ONNX_OPSET

from .card import INDEX_FIELDS
from .formats import VERIFY_ATOL, VERIFY_RTOL
from .loading import load
from .trials import export_arch, export_confirmed_front, export_trials

__all__ = [
    "INDEX_FIELDS",
    "ONNX_OPSET",
    "VERIFY_ATOL",
    "VERIFY_RTOL",
    "export_arch",
    "export_confirmed_front",
    "export_trials",
    "load",
]
