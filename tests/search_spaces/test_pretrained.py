"""Pretrained starts: weights files and published weights, head handling, identity inits.

Random weights saved to a temporary file stand in for downloaded ones (no network here).
"""

import re

import pytest
import torch
import torchvision
from torch import nn

import attn_blocks
from search_spaces import pretrained as pretrained_module
from search_spaces.backbones import backbone_sites, build_backbone
from search_spaces.build import build_model
from search_spaces.pretrained import identity_init, preserves_function
from search_spaces.spec import POSITIONS, ArchSpec, BlockChoice

PRESERVING = [b for b in attn_blocks.available() if b != "none" and preserves_function(b)]
#: Blocks that cannot start as the identity (the module docstring says why); not claimed.
NOT_PRESERVING = {
    "se",
    "eca",
    "fca",
    "srm",
    "gsop",
    "encoding",
    "cbam",
    "coord",
    "bilinear",
    "simam",
    "bam",
}

#: Backbone, arguments and input side of each backbone family the tests load weights into.
FAMILIES = {
    "torchvision": ("resnet18", {"small_input": True}, 16),
    "timm": ("timm:resnet18", {}, 32),
    "cifar": ("resnet8", {"width": 4}, 16),
}


def _pretend_pretrained(name: str, args: dict, num_classes: int = 10, **kwargs) -> nn.Module:
    """A backbone whose weights look trained: BN statistics and affine terms away from init."""
    torch.manual_seed(123)
    model = build_backbone(name, num_classes=num_classes, **kwargs, **args)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_(0.0, 0.2)
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _saved(tmp_path, state, filename: str = "weights.pt") -> str:
    path = tmp_path / filename
    torch.save(state, path)
    return str(path)


def _spec(name: str, args: dict, choices: list[BlockChoice], num_classes: int = 10) -> ArchSpec:
    sites = backbone_sites(name, **args)
    return ArchSpec(
        name,
        args,
        num_classes=num_classes,
        sites={s.name: choices[i % len(choices)] for i, s in enumerate(sites)},
    )


def _assert_same_function(model: nn.Module, reference: nn.Module, size: int) -> None:
    x = torch.randn(2, 3, size, size)
    for training in (False, True):
        model.train(training)
        reference.train(training)
        assert torch.allclose(model(x), reference(x), atol=1e-6), f"training={training}"


def test_every_block_is_classified_and_the_docstring_table_agrees():
    assert {"gc", "gct", "non_local"} <= set(PRESERVING)
    assert set(PRESERVING).isdisjoint(NOT_PRESERVING)
    assert set(attn_blocks.available()) == {"none", *PRESERVING, *NOT_PRESERVING}
    rows = re.findall(r"^(\w[\w, ]*?)\s{2,}(yes|no)\s{2,}", pretrained_module.__doc__, re.M)
    table = {name: flag == "yes" for names, flag in rows for name in names.split(", ")}
    assert table == {b: preserves_function(b) for b in attn_blocks.available()}


@pytest.mark.parametrize("block", PRESERVING)
def test_identity_init_makes_a_perturbed_block_the_identity(block):
    module = attn_blocks.create(block, 16)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    x = torch.randn(2, 16, 6, 6)
    module.eval()
    assert not torch.allclose(module(x), x)
    identity_init(module)
    for training in (False, True):
        module.train(training)
        assert torch.equal(module(x), x)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_identity_capable_blocks_start_as_the_pretrained_network(tmp_path, family):
    name, args, size = FAMILIES[family]
    source = _pretend_pretrained(name, args)
    path = _saved(tmp_path, source.state_dict())
    # Each site gets another block, the positions rotating independently.
    choices = [
        BlockChoice(PRESERVING[i % len(PRESERVING)], {}, POSITIONS[i % len(POSITIONS)])
        for i in range(len(PRESERVING) * len(POSITIONS))
    ]
    model = build_model(_spec(name, args, choices), seed=0, pretrained=path)
    plain = build_backbone(name, pretrained=path, **args)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    assert sum(".attn." in k for k in loaded) > 0
    _assert_same_function(model, plain, size)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("block", PRESERVING)
def test_every_preserving_block_at_every_position(tmp_path, block, position):
    name, args, size = FAMILIES["cifar"]
    path = _saved(tmp_path, _pretend_pretrained(name, args).state_dict())
    model = build_model(_spec(name, args, [BlockChoice(block, {}, position)]), pretrained=path)
    _assert_same_function(model, build_backbone(name, pretrained=path, **args), size)


@pytest.mark.parametrize("block", sorted(NOT_PRESERVING))
def test_the_other_blocks_change_the_function_and_are_not_claimed(tmp_path, block):
    name, args, size = FAMILIES["cifar"]
    path = _saved(tmp_path, _pretend_pretrained(name, args).state_dict())
    model = build_model(_spec(name, args, [BlockChoice(block)]), seed=0, pretrained=path).eval()
    plain = build_backbone(name, pretrained=path, **args).eval()
    x = torch.randn(2, 3, size, size)
    assert not preserves_function(block)
    assert not torch.allclose(model(x), plain(x), atol=1e-3)


@pytest.mark.parametrize(
    ("name", "args", "head"),
    [
        ("resnet8", {"width": 4}, "fc"),
        ("timm:resnet18", {}, "fc"),
        ("mobilenet_v2", {"width_mult": 0.25}, "classifier.1"),
    ],
)
def test_another_head_size_is_skipped_and_re_initialised(tmp_path, name, args, head):
    source = _pretend_pretrained(name, args, num_classes=10)
    path = _saved(tmp_path, source.state_dict())
    spec = ArchSpec(name, args, num_classes=4)
    model = build_model(spec, seed=3, pretrained=path)
    fresh = build_model(spec, seed=3)
    state, fresh_state = model.state_dict(), fresh.state_dict()
    for key, value in source.state_dict().items():
        if key.startswith(f"{head}."):
            assert state[key].shape[0] == 4 and torch.equal(state[key], fresh_state[key])
        else:
            assert torch.equal(state[key], value), key
    same_head = build_backbone(name, pretrained=path, **args).get_submodule(head)
    assert torch.equal(same_head.weight, source.get_submodule(head).weight)


def test_a_file_that_does_not_fit_names_the_file_and_the_first_keys(tmp_path):
    state = build_backbone("resnet8", width=4).state_dict()
    narrow = _saved(tmp_path, state, "narrow.pt")
    with pytest.raises(ValueError) as error:
        build_backbone("resnet8", pretrained=narrow, width=8)
    text = str(error.value)
    assert text.startswith(f"weights file {narrow!r} does not fit backbone 'resnet8': ")
    assert "shape mismatches ['conv1.weight: (4, 3, 3, 3) in the weights, (8, 3, 3, 3)" in text
    assert "(+" in text and "more)" in text  # every layer differs: the first five are shown
    extra = _saved(tmp_path, {**state, "extra.weight": torch.zeros(1)}, "extra.pt")
    with pytest.raises(ValueError, match=r"unexpected keys \['extra.weight'\]\. The weights"):
        build_backbone("resnet8", pretrained=extra, width=4)
    partial = {k: v for k, v in state.items() if k != "layer2.0.conv1.weight"}
    with pytest.raises(ValueError, match=r"missing keys \['layer2.0.conv1.weight'\]\. The"):
        build_backbone("resnet8", pretrained=_saved(tmp_path, partial, "partial.pt"), width=4)
    attended = build_model(ArchSpec("resnet8", {"width": 4}, sites={"stage1.0": BlockChoice("se")}))
    with pytest.raises(ValueError, match=r"unexpected keys \['layer1.0.attn.fc1.weight'"):
        build_backbone(
            "resnet8", pretrained=_saved(tmp_path, attended.state_dict(), "a.pt"), width=4
        )


def test_file_formats(tmp_path):
    source = _pretend_pretrained("resnet8", {"width": 4})
    state = source.state_dict()
    checkpoint = _saved(tmp_path, {"state_dict": state, "epoch": 3}, "checkpoint.ckpt")
    without_counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    for path in (checkpoint, _saved(tmp_path, without_counters, "old.pt")):
        loaded = build_backbone("resnet8", pretrained=path, width=4).state_dict()
        assert torch.equal(loaded["layer3.0.bn2.running_var"], state["layer3.0.bn2.running_var"])
    cases = [
        (_saved(tmp_path, [1, 2], "list.pt"), r"holds a list, not a state dict"),
        (_saved(tmp_path, {"a": 1}, "int.pt"), r"is not a state dict: entries \['a'\] are not"),
        (str(tmp_path / "garbage.pt"), r"could not be read"),
    ]
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    for path, message in cases:
        with pytest.raises(ValueError, match=rf"^weights file '{re.escape(path)}' {message}"):
            build_backbone("resnet8", pretrained=path)
    missing = str(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match=rf"weights file '{re.escape(missing)}' does not"):
        build_model(ArchSpec("resnet8"), pretrained=missing)
    with pytest.raises(ValueError, match=r"pretrained must be True, False or the path .* got 1$"):
        build_backbone("resnet8", pretrained=1)


def test_safetensors_files(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    state = _pretend_pretrained("resnet8", {"width": 4}).state_dict()
    path = str(tmp_path / "weights.safetensors")
    safetensors.save_file(state, path)
    loaded = build_backbone("resnet8", pretrained=path, width=4).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_build_model_runs_the_identity_hooks_only_for_pretrained_starts(tmp_path, monkeypatch):
    gct = attn_blocks.info("gct").cls
    calls = []
    open_gate = pretrained_module.IDENTITY_INITS[gct]
    monkeypatch.setitem(
        pretrained_module.IDENTITY_INITS, gct, lambda block: calls.append(open_gate(block))
    )
    name, args, _ = FAMILIES["cifar"]
    spec = _spec(name, args, [BlockChoice("gct", {}, "post")])
    build_model(spec, seed=0)
    assert calls == []
    path = _saved(tmp_path, build_backbone(name, **args).state_dict())
    build_model(spec, seed=0, pretrained=path)
    assert len(calls) == len(backbone_sites(name, **args))


@pytest.mark.parametrize("name", ["cifar_resnet", "resnet8", "resnet20", "resnet56"])
def test_cifar_resnets_have_no_published_weights(name):
    with pytest.raises(ValueError, match=rf"backbone '{name}' has no published weights .*path"):
        build_model(ArchSpec(name), pretrained=True)


def test_torchvision_published_weights(monkeypatch):
    published = _pretend_pretrained("resnet18", {}, num_classes=1000).state_dict()
    urls = []

    def download(url, *args, **kwargs):
        urls.append(url)
        return published

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", download)
    spec = _spec("resnet18", {}, [BlockChoice("gct", {}, "post")])
    model = build_model(spec, seed=0, pretrained=True)
    plain = build_model(ArchSpec("resnet18"), seed=0, pretrained=True)  # the same head init
    assert len(urls) == 2 and "resnet18" in urls[0]
    assert torch.equal(plain.conv1.weight, published["conv1.weight"])
    assert plain.fc.out_features == 10
    _assert_same_function(model, plain, 32)
    with pytest.raises(ValueError, match=r"^torchvision's ResNet18_Weights\.\w+ weights does not"):
        build_backbone("resnet18", pretrained=True, small_input=True)


def test_timm_published_weights(tmp_path, monkeypatch):
    timm = pytest.importorskip("timm")
    published = _pretend_pretrained("timm:resnet18", {}, num_classes=1000).state_dict()
    path = _saved(tmp_path, published)
    create_model = timm.create_model
    calls = []

    def offline_create_model(name, pretrained=False, **kwargs):
        calls.append(pretrained)
        if pretrained:  # timm's own loading, from a local file instead of the hub
            kwargs["pretrained_cfg_overlay"] = {"file": path}
        return create_model(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline_create_model)
    spec = _spec("timm:resnet18", {}, [BlockChoice("gc", {}, "standard")], num_classes=3)
    model = build_model(spec, seed=0, pretrained=True)
    plain = build_model(ArchSpec("timm:resnet18", num_classes=3), seed=0, pretrained=True)
    assert calls == [True, True]
    assert torch.equal(plain.layer4[1].bn2.weight, published["layer4.1.bn2.weight"])
    assert plain.fc.out_features == 3
    _assert_same_function(model, plain, 32)
