"""Checks every registered block must pass, whatever its family.

Block-specific numerics (parameter formulas, references, timm agreement) live beside this file in
``test_<module>.py``.
"""

import io
import warnings

import pytest
import torch

import attn_blocks

BLOCKS = attn_blocks.available()
ATTENTIVE = [b for b in BLOCKS if b != "none"]


def _make(name: str, channels: int, **params) -> torch.nn.Module:
    return attn_blocks.create(name, channels, **params)


def _search_params(name: str) -> list[dict]:
    """Every single-parameter variation the search can pick, plus the defaults."""
    variants = [{}]
    for p in attn_blocks.info(name).params:
        variants += [{p.name: v} for v in p.search]
    return variants


@pytest.mark.parametrize("name", BLOCKS)
@pytest.mark.parametrize("hw", [(1, 1), (2, 2), (7, 7), (33, 17)])
def test_shape_any_spatial_size(name, hw):
    block = _make(name, 16).train()
    x = torch.randn(2, 16, *hw)
    y = block(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", BLOCKS)
@pytest.mark.parametrize("channels", [3, 16, 100])
def test_channels_and_search_params(name, channels):
    for params in _search_params(name):
        block = _make(name, channels, **params)
        x = torch.randn(2, channels, 9, 6)
        assert block(x).shape == x.shape, params


@pytest.mark.parametrize("name", ATTENTIVE)
def test_gradients_reach_every_parameter(name):
    block = _make(name, 16).train()
    x = torch.randn(4, 16, 8, 8, requires_grad=True)
    # A random projection of the output: a plain sum can have an exactly-zero gradient for
    # normalised or gated outputs.
    (block(x) * torch.randn(4, 16, 8, 8)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in block.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}.{pname} has a non-finite gradient"


@pytest.mark.parametrize("name", BLOCKS)
def test_batch_size_one(name):
    info = attn_blocks.info(name)
    block = _make(name, 16)
    block.train(info.train_batch1)
    x = torch.randn(1, 16, 5, 5)
    assert block(x).shape == x.shape
    block.eval()
    assert torch.isfinite(block(x)).all()


@pytest.mark.parametrize("name", ATTENTIVE)
def test_train_batch1_flag_is_honest(name):
    """Blocks that claim batch-1 training must not raise; those that do not must raise."""
    block = _make(name, 16).train()
    x = torch.randn(1, 16, 5, 5)
    if attn_blocks.info(name).train_batch1:
        block(x)
    else:
        with pytest.raises(ValueError):
            block(x)


@pytest.mark.parametrize("name", ATTENTIVE)
def test_gradcheck_float64(name):
    block = _make(name, 4, **_small_params(name)).double().eval()
    _perturb_zero_init(block)
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", BLOCKS)
def test_torchscript_matches_eager(name):
    block = _make(name, 16).eval()
    _perturb_zero_init(block)
    scripted = torch.jit.script(block)
    for hw in [(7, 7), (5, 9)]:
        x = torch.randn(2, 16, *hw)
        torch.testing.assert_close(scripted(x), block(x))


@pytest.mark.parametrize("name", BLOCKS)
def test_onnx_export_matches_eager(name):
    ort = pytest.importorskip("onnxruntime")
    block = _make(name, 16).eval()
    _perturb_zero_init(block)
    buffer = io.BytesIO()
    x = torch.randn(2, 16, 7, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            block,
            (x,),
            buffer,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch", 2: "h", 3: "w"}, "y": {0: "batch", 2: "h", 3: "w"}},
        )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for shape in [(2, 16, 7, 7), (3, 16, 9, 5)]:
        x = torch.randn(*shape)
        (y,) = session.run(None, {"x": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(y), block(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", BLOCKS)
def test_bf16_autocast_cpu(name):
    block = _make(name, 16).train()
    x = torch.randn(2, 16, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(x)
    assert y.shape == x.shape
    assert torch.isfinite(y.float()).all()


def test_unknown_block_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown attention block 'sse'.*se"):
        attn_blocks.create("sse", 16)


@pytest.mark.parametrize("name", ATTENTIVE)
def test_unknown_parameter_is_rejected(name):
    with pytest.raises(ValueError, match=f"block '{name}'.*'not_a_param'"):
        attn_blocks.create(name, 16, not_a_param=1)


def test_invalid_reduction_names_block_parameter_and_rule():
    with pytest.raises(
        ValueError, match=r"block 'se': parameter reduction=0 .*allowed: an int >= 1"
    ):
        attn_blocks.create("se", 16, reduction=0)


def test_every_block_has_metadata():
    for name in ATTENTIVE:
        info = attn_blocks.info(name)
        assert info.family in attn_blocks.FAMILIES and info.family != "none"
        assert info.paper and info.cls.__doc__
        for p in info.params:
            assert p.check(p.default) is None, (name, p.name)
            for v in p.search:
                assert p.check(v) is None, (name, p.name, v)


def _small_params(name: str) -> dict:
    """Parameters that keep a 4-channel block non-degenerate for gradcheck."""
    names = attn_blocks.info(name).param_names
    return {"reduction": 2} if "reduction" in names else {}


def _perturb_zero_init(block: torch.nn.Module) -> None:
    """Zero-initialised gates (GCT, SRM, non-local) make the block an identity; perturb them so
    the numerical comparisons exercise the whole computation."""
    with torch.no_grad():
        for p in block.parameters():
            if p.abs().sum() == 0:
                p.normal_(0.0, 0.5)
        for m in block.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
