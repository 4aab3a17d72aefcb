"""An Archai-style model space (a conv-block model bound to an architecture tree), searched by
local search on digits.

Run:    archtune run examples/archai_tree.py
Python: from examples.archai_tree import model_space; m = model_space.random_sample()

The tree follows Archai's config-search-space tutorial: a base width, then 1-3 downsampling
blocks (``repeat``), each with a max-pool size, a channel multiplier and 1-5 conv layers of their
own kernel size and activation. ``IMAGE_TREE`` is the tutorial's image-classification tree
(``num_archs`` 1.218719480020992e18, an upper bound); ``SMALL_TREE`` is the one searched here,
where every conv of a block shares its decisions (``share=True``) and the stem and head
kernels are one decision (the same ``choice`` object used twice).
"""
from __future__ import annotations

from torch import nn

from orchestrator.spec import Experiment, SearcherSpec
from spaces.tree import ArchConfig, choice, repeat
from trainers.nas.model_space import ModelSpace

IMAGE_TREE = {
    "base_num_channels": choice([8, 16, 32, 64]),
    "downsample_blocks": repeat({
        "max_pool_kernel_size": choice([2, 3]),
        "channel_multiplier": choice([1.0, 1.2, 1.4, 1.6, 1.8, 2.0]),
        "convs": repeat({"kernel_size": choice([3, 5, 7]), "act_fn": choice(["relu", "gelu"])},
                        counts=[1, 2, 3, 4, 5]),
    }, counts=[1, 2, 3]),
}

_kernel = choice([3, 5], name="kernel")
SMALL_TREE = {
    "base_num_channels": choice([4, 8, 16]),
    "stem": {"kernel_size": _kernel},
    "head": {"kernel_size": _kernel},          # the same object: one decision for both
    "downsample_blocks": repeat({
        "channel_multiplier": choice([1.0, 1.5, 2.0]),
        "convs": repeat({"kernel_size": choice([3, 5]), "act_fn": choice(["relu", "gelu"])},
                        counts=[1, 2], share=True),  # every conv of a block alike
    }, counts=[1, 2]),
}

def _pick_or(arch: ArchConfig, name: str, default):
    """``arch.pick(name)``, or ``default`` where the tree has no such entry."""
    try:
        return arch.pick(name)
    except KeyError:
        return default


class ConvLayer(nn.Sequential):
    """'same'-padded conv, BatchNorm, ReLU or GELU, as chosen by ``arch``."""

    def __init__(self, arch: ArchConfig, in_ch: int, out_ch: int):
        act = nn.ReLU() if arch.pick("act_fn") == "relu" else nn.GELU()
        super().__init__(nn.Conv2d(in_ch, out_ch, arch.pick("kernel_size"), padding="same"),
                         nn.BatchNorm2d(out_ch), act)


class ConvNet(nn.Module):
    """A stem conv, then per downsampling block its conv layers and a max-pool, then (when the
    tree has one) a head conv; returns the feature map (the trainer adds a pooled linear
    classifier)."""

    def __init__(self, arch: ArchConfig, stem_stride: int = 1):
        super().__init__()
        width = arch.pick("base_num_channels")
        stem_kernel = _pick_or(arch, "stem", None)
        stem_kernel = stem_kernel.pick("kernel_size") if stem_kernel is not None else 3
        layers: list[nn.Module] = [nn.Conv2d(3, width, stem_kernel, stem_stride,
                                             padding=stem_kernel // 2),
                                   nn.BatchNorm2d(width), nn.ReLU()]
        for block in arch.pick("downsample_blocks"):
            out = int(block.pick("channel_multiplier") * width)
            for i, conv in enumerate(block.pick("convs")):
                layers.append(ConvLayer(conv, width if i == 0 else out, out))
            layers.append(nn.MaxPool2d(_pick_or(block, "max_pool_kernel_size", 2)))
            width = out
        head = _pick_or(arch, "head", None)
        if head is not None:
            k = head.pick("kernel_size")
            layers += [nn.Conv2d(width, width, k, padding=k // 2), nn.BatchNorm2d(width), nn.ReLU()]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


model_space = ModelSpace(ConvNet, SMALL_TREE, model_kwargs={"stem_stride": 1}, seed=0)

experiment = Experiment(
    name="archai_tree",
    trainer=model_space,
    data={"dataset": "digits", "image_size": 16, "batch_size": 64, "lr": 0.05,
          "latency_repeats": 2, "latency_warmup": 1, "checkpoint_every": 0},
    metric="val_acc", mode="max",
    searcher=SearcherSpec(type="local", seed=0, max_steps=3),
    num_samples=8, max_epochs=2, storage="archtune_results",
)
