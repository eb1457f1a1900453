"""Optuna's own live dashboard on a study's storage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore


def serve_optuna_dashboard(
    storage_url: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    artifact_store: ArtifactStore | None = None,
) -> None:
    """Serve optuna-dashboard on a study storage (a journal file or a database URL) until
    interrupted; our metric names and trial user attrs (summary, arch, cost) show there, and,
    given the study's ``artifact_store``, the trials' weights can be downloaded from it."""
    from ..storage import open_storage

    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise RuntimeError(
            "optuna-dashboard is not installed: pip install optuna-dashboard"
        ) from None
    if "://" not in storage_url and not Path(storage_url).exists():
        raise FileNotFoundError(f"no study storage at {storage_url}")
    run_server(open_storage(storage_url), host=host, port=port, artifact_store=artifact_store)
