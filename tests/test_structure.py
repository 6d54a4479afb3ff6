"""Channel pruning and low-rank factorization: the dependency rules, against an exact oracle.

Oracle: when the channels a stage removes carry nothing (their filters, biases
and BatchNorm shift are zero, so they are zero everywhere downstream), the
thinner model must compute the same function. Tolerance: 1e-5 relative and
1e-6 absolute in float32 (fewer terms in each sum change only the order of
additions of zeros, and oneDNN's blocking).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgec.compress import create
from edgec.compress.graph import ChannelGraph
from edgec.config import StageSpec
from edgec.errors import ConfigError

RTOL, ATOL = 1e-5, 1e-6


def _randomize_bn(model, rng):
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n), rng.normal(0, 0.3, n),
                               rng.uniform(0.5, 2.0, n)])


def zero_channels(model, fraction: float, rng) -> dict:
    """Make round(fraction x size) random channels of every prunable space carry nothing;
    return {root: killed channel indices}."""
    graph = ChannelGraph(model)
    killed = {}
    for r in graph.prunable():
        size = graph.spaces[r].size
        dead = rng.choice(size, int(round(fraction * size)), replace=False)
        killed[r] = dead
        for name in graph.spaces[r].producers:
            layer = model.get_layer(name)
            w = layer.get_weights()
            w[-2 if len(w) == 3 else 0][..., dead] = 0.0  # kernel (pointwise one for separable)
            if len(w) > 1 and layer.use_bias:
                w[-1][dead] = 0.0
            layer.set_weights(w)
        for name, layout in graph.inputs.items():
            if graph.kinds[name] in ("scale", "depthwise") and graph.root(layout[1][0]) == r:
                layer = model.get_layer(name)
                w = layer.get_weights()
                if graph.kinds[name] == "scale":  # beta and moving mean 0: a zero channel stays zero
                    w[1][dead] = 0.0
                    w[2][dead] = 0.0
                elif len(w) > 1:
                    w[1][dead] = 0.0
                layer.set_weights(w)
    return killed


def residual(k):
    inp = k.Input((8, 8, 3))
    a = k.layers.Conv2D(8, 3, padding="same", name="a")(inp)
    a = k.layers.BatchNormalization(name="bn_a")(a)
    a = k.layers.ReLU(name="relu_a")(a)
    b = k.layers.Conv2D(8, 3, padding="same", name="b")(a)
    b = k.layers.BatchNormalization(name="bn_b")(b)
    s = k.layers.Conv2D(8, 1, name="shortcut")(inp)
    x = k.layers.Add(name="add")([s, b])
    x = k.layers.ReLU(name="relu")(x)
    x = k.layers.Conv2D(6, 3, strides=2, name="c")(x)
    x = k.layers.GlobalAveragePooling2D(name="gap")(x)
    return k.Model(inp, k.layers.Dense(4, name="out")(x))


def concat(k):
    inp = k.Input((8, 8, 2))
    a = k.layers.Conv2D(6, 3, padding="same", activation="relu", name="a")(inp)
    b = k.layers.Conv2D(4, 1, activation="relu", name="b")(inp)
    x = k.layers.Concatenate(name="cat")([a, b])
    x = k.layers.Conv2D(8, 3, name="c")(x)
    x = k.layers.MaxPooling2D(name="pool")(x)
    x = k.layers.Flatten(name="flat")(x)
    return k.Model(inp, k.layers.Dense(3, activation="softmax", name="out")(x))


def flatten_dense(k):
    inp = k.Input((6, 6, 1))
    x = k.layers.Conv2D(8, 3, name="conv")(inp)
    x = k.layers.BatchNormalization(name="bn")(x)
    x = k.layers.Activation("relu", name="act")(x)
    x = k.layers.Flatten(name="flat")(x)
    x = k.layers.Dense(12, activation="relu", name="fc1")(x)
    x = k.layers.Dropout(0.2, name="drop")(x)
    return k.Model(inp, k.layers.Dense(5, name="out")(x))


def depthwise_pointwise(k):
    inp = k.Input((8, 8, 3))
    x = k.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inp)
    x = k.layers.BatchNormalization(name="bn0")(x)
    x = k.layers.ReLU(6.0, name="relu0")(x)
    x = k.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = k.layers.BatchNormalization(name="bn1")(x)
    x = k.layers.ReLU(name="relu1")(x)
    x = k.layers.Conv2D(12, 1, name="pw")(x)
    x = k.layers.SeparableConv2D(10, 3, padding="same", name="sep")(x)
    x = k.layers.AveragePooling2D(name="avg")(x)
    x = k.layers.GlobalMaxPooling2D(name="gmp")(x)
    return k.Model(inp, k.layers.Dense(4, name="out")(x))


def sequential(k):
    return k.Sequential([k.Input((10,)), k.layers.Dense(16, activation="relu", name="d1"),
                         k.layers.Dense(12, activation="tanh", name="d2"), k.layers.Dense(3, name="out")])


BUILDERS = {"residual_add": residual, "concatenate": concat, "flatten_dense": flatten_dense,
            "depthwise_pointwise": depthwise_pointwise, "sequential": sequential}


@pytest.mark.parametrize("name", BUILDERS)
def test_removing_zero_channels_keeps_outputs_exact(tfk, name):
    tfk.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    model = BUILDERS[name](tfk)
    _randomize_bn(model, rng)
    killed = zero_channels(model, 0.5, rng)
    assert killed, "the model must have prunable channels"
    stage = create(StageSpec.parse("channels:fraction=0.5"))
    thin, report = stage.shrink(model, 0.5)
    x = rng.normal(size=(16, *model.input_shape[1:])).astype(np.float32)
    np.testing.assert_allclose(thin(x).numpy(), model(x).numpy(), rtol=RTOL, atol=ATOL)
    assert thin.count_params() < model.count_params()
    for row in report["channels"]:
        assert row["after"] == row["before"] - int(round(0.5 * row["before"]))
    assert "out" in report["left_unpruned"]  # the output layer keeps its channels


def test_residual_group_is_pruned_together(tfk):
    graph = ChannelGraph(residual(tfk))
    groups = [sorted(graph.spaces[r].producers) for r in graph.prunable()]
    assert ["b", "shortcut"] in groups
    assert sorted(graph.spaces[next(r for r in graph.prunable() if "b" in graph.spaces[r].producers)].scales) \
        == ["bn_b"]


def test_concatenate_keeps_each_input_separate(tfk):
    graph = ChannelGraph(concat(tfk))
    assert sorted(p for r in graph.prunable() for p in graph.spaces[r].producers) == ["a", "b", "c"]
    model = concat(tfk)
    thin, _ = create(StageSpec.parse("channels:fraction=0.5")).shrink(model, 0.5)
    assert thin.get_layer("c").kernel.shape[2] == 3 + 2  # half of each concatenated input


def test_flatten_into_dense_selects_rows_per_position(tfk):
    model = flatten_dense(tfk)
    thin, _ = create(StageSpec.parse("channels:fraction=0.25")).shrink(model, 0.25)
    assert thin.get_layer("fc1").kernel.shape[0] == 4 * 4 * 6  # 16 positions x 6 of 8 channels
    assert thin.get_layer("fc1").kernel.shape[1] == 9


def test_layers_that_cannot_be_followed_are_left_and_named(tfk):
    inp = tfk.Input((4, 4, 2))
    x = tfk.layers.Conv2D(8, 3, padding="same", name="conv")(inp)
    x = tfk.layers.Reshape((16, 8), name="reshape")(x)
    x = tfk.layers.Flatten(name="flat")(x)
    x = tfk.layers.Dense(6, name="fc")(x)
    model = tfk.Model(inp, tfk.layers.Dense(2, name="out")(x))
    thin, report = create(StageSpec.parse("channels:fraction=0.5")).shrink(model, 0.5)
    assert "reshape" in report["left_unpruned"]["conv"]
    assert thin.get_layer("conv").filters == 8
    assert thin.get_layer("fc").units == 3


def test_shared_layer_is_left_alone(tfk):
    inp = tfk.Input((6,))
    shared = tfk.layers.Dense(6, name="shared")
    x = shared(shared(inp))
    model = tfk.Model(inp, tfk.layers.Dense(2, name="out")(x))
    with pytest.raises(ConfigError, match="called more than once"):
        create(StageSpec.parse("channels")).shrink(model, 0.5)


def test_global_scope_and_bn_criterion_remove_the_least_important(tfk):
    model = flatten_dense(tfk)
    gamma = np.linspace(0.01, 1.0, 8)
    bn = model.get_layer("bn")
    bn.set_weights([gamma, *bn.get_weights()[1:]])
    stage = create(StageSpec.parse("channels:criterion=bn,fraction=0.25"))
    thin, report = stage.shrink(model, 0.25)
    np.testing.assert_allclose(thin.get_layer("bn").gamma.numpy(), gamma[2:], rtol=1e-6)
    glob = create(StageSpec.parse("channels:scope=global,fraction=0.5,multiple_of=4"))
    _, report = glob.shrink(model, 0.5)
    assert all(row["after"] % 4 == 0 and row["after"] >= 4 for row in report["channels"])


def test_lowrank_is_exact_for_a_low_rank_kernel(tfk):
    tfk.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    inp = tfk.Input((8, 8, 3))
    x = tfk.layers.Conv2D(24, 1, strides=2, activation="relu", name="pw")(inp)
    x = tfk.layers.Flatten(name="flat")(x)
    x = tfk.layers.Dense(40, activation="relu", name="fc")(x)
    model = tfk.Model(inp, tfk.layers.Dense(3, name="out")(x))
    fc = model.get_layer("fc")
    w = (rng.normal(size=(fc.kernel.shape[0], 4)) @ rng.normal(size=(4, 40))).astype(np.float32)  # rank 4
    fc.set_weights([w, fc.get_weights()[1]])
    stage = create(StageSpec.parse("lowrank:energy=0.999999,include=fc"))
    new, report = stage.factorize(model)
    assert report["factorized"][0]["rank"] == 4
    assert new.get_layer("fc_lowrank").kernel.shape == (w.shape[0], 4)
    x = rng.normal(size=(8, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(new(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)
    assert new.count_params() < model.count_params()
    # a 1x1 convolution with a stride: the first factor carries it; full rank is skipped (no saving)
    new, report = create(StageSpec.parse("lowrank:ratio=0.5,include=pw")).factorize(model)
    assert new.get_layer("pw_lowrank").strides == (2, 2) and new.get_layer("pw").strides == (1, 1)
    assert new.output_shape == model.output_shape
    with pytest.raises(ConfigError, match="not fewer than"):
        create(StageSpec.parse("lowrank:ratio=1.0,include=out")).factorize(model)


@pytest.mark.parametrize("spec, words", [
    ("channels:fraction=1.0", "fraction"),
    ("channels:criterion=l3", "criterion"),
    ("channels:scope=model", "scope"),
    ("lowrank:energy=0.9,ratio=0.5", "either"),
    ("lowrank:ratio=0", "ratio"),
])
def test_bad_parameters_are_refused(spec, words):
    with pytest.raises(ConfigError, match=words):
        create(StageSpec.parse(spec))


def test_structural_stages_must_come_before_prune():
    from edgec.compress import validate

    with pytest.raises(ConfigError, match="before 'prune'"):
        validate([StageSpec.parse("prune"), StageSpec.parse("channels")])
