import os

import pytest
import torch

# Two cores on CI: one intra-op thread per test process keeps timings stable and avoids
# oversubscription when helpers run pytest in parallel.
torch.set_num_threads(int(os.environ.get("ATTN_NAS_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shared_data_dir():
    """``../shared/data`` (or $ATTN_NAS_DATA); tests that need it skip where it is absent."""
    from pathlib import Path

    path = Path(
        os.environ.get("ATTN_NAS_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    if not (path / "cifar10-jpeg.tar.gz").exists():
        pytest.skip(f"real-data test: {path}/cifar10-jpeg.tar.gz not found (set ATTN_NAS_DATA)")
    return path
