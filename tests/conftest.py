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


@pytest.fixture(scope="session")
def load_benchmark():
    """``benchmarks/<name>.py`` as a module (the scripts are not a package), registered in
    ``sys.modules`` so that its dataclasses resolve their annotations."""
    import importlib.util
    import sys
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"{name}_bench", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    return load
