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


def _conv_model(tfk, strides=1, padding="same"):
    tfk.utils.set_random_seed(6)
    inp = tfk.Input((10, 10, 12))
    x = tfk.layers.Conv2D(16, 3, strides=strides, padding=padding, activation="relu", name="conv")(inp)
    x = tfk.layers.GlobalAveragePooling2D(name="gap")(x)
    return tfk.Model(inp, tfk.layers.Dense(3, name="out")(x))


@pytest.mark.parametrize("strides, padding", [(1, "same"), (2, "valid")])
def test_tucker2_is_exact_for_a_kernel_of_known_tucker_rank(tfk, strides, padding):
    from edgec.compress.decompose import tucker2

    rng = np.random.default_rng(7)
    core = rng.normal(size=(3, 3, 4, 6))
    u, v = np.linalg.qr(rng.normal(size=(12, 4)))[0], np.linalg.qr(rng.normal(size=(16, 6)))[0]
    kernel = np.einsum("yxrs,ir,os->yxio", core, u, v)
    assert tucker2(kernel, 4, 6)[3] < 1e-5 and tucker2(kernel, 3, 6)[3] > 0.05  # rank 3 is not enough
    model = _conv_model(tfk, strides, padding)
    conv = model.get_layer("conv")
    conv.set_weights([kernel.astype(np.float32), conv.get_weights()[1]])
    new, report = create(StageSpec.parse("lowrank:method=tucker,energy=0.999999,include=conv")).factorize(model)
    row = report["factorized"][0]
    assert row["ranks"] == [4, 6] and row["relative_error"] < 1e-5
    assert row["macs_after"] < row["macs_before"]
    assert new.get_layer("conv_tucker_in").kernel.shape == (1, 1, 12, 4)
    core_layer = new.get_layer("conv_tucker_core")
    assert core_layer.kernel.shape == (3, 3, 4, 6) and core_layer.strides == (strides, strides)
    assert new.get_layer("conv").kernel.shape == (1, 1, 6, 16)
    x = rng.normal(size=(4, 10, 10, 12)).astype(np.float32)
    np.testing.assert_allclose(new(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("strides, padding", [(1, "same"), (2, "same")])
def test_cp_is_exact_for_a_kernel_of_known_cp_rank(tfk, strides, padding):
    from edgec.compress.decompose import cp

    rng = np.random.default_rng(8)
    a, b, c, d = (rng.normal(size=(n, 5)) for n in (3, 3, 12, 16))
    kernel = np.einsum("yr,xr,ir,or->yxio", a, b, c, d)
    assert cp(kernel, 5)[4] < 1e-5 and cp(kernel, 4)[4] > 0.01
    model = _conv_model(tfk, strides, padding)
    conv = model.get_layer("conv")
    conv.set_weights([kernel.astype(np.float32), conv.get_weights()[1]])
    new, report = create(StageSpec.parse("lowrank:method=cp,energy=0.999999,include=conv")).factorize(model)
    row = report["factorized"][0]
    assert row["ranks"] == [5] and row["relative_error"] < 1e-5
    assert new.get_layer("conv_cp_vertical").depthwise_kernel.shape == (3, 1, 5, 1)
    assert new.get_layer("conv_cp_horizontal").strides == (1, strides)
    x = rng.normal(size=(4, 10, 10, 12)).astype(np.float32)
    np.testing.assert_allclose(new(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)


def test_a_factorization_that_would_not_lower_the_macs_is_skipped_and_said(tfk):
    model = _conv_model(tfk)
    with pytest.raises(ConfigError, match="not fewer than"):  # full Tucker ranks cost more than the conv
        create(StageSpec.parse("lowrank:method=tucker,ratio=1.0,include=conv")).factorize(model)
    _, report = create(StageSpec.parse("lowrank:ratio=0.5")).factorize(model)  # svd: the Dense only
    assert "method=tucker or cp" in report["left_unfactorized"]["conv"]


@pytest.mark.parametrize("method", ["tucker", "cp"])
def test_a_mac_budget_finds_the_ratio_that_meets_it(tfk, method):
    model = _conv_model(tfk)
    new, report = create(StageSpec.parse(f"lowrank:method={method},macs=0.5")).factorize(model)
    search = report["macs_search"]
    assert "conv" in {r["layer"] for r in report["factorized"]}
    assert 0.2 < search["macs_kept"] <= 0.5 and 0 < search["ratio_found"] <= 1  # whole ranks
    # what the rows say adds up to the search's figure: the layers left alone count whole
    after = sum(r["macs_after"] for r in report["factorized"])
    left = search["macs_of_factorizable_layers"] - sum(r["macs_before"] for r in report["factorized"])
    assert after + left == round(search["macs_kept"] * search["macs_of_factorizable_layers"]) or \
        abs((after + left) / search["macs_of_factorizable_layers"] - search["macs_kept"]) < 1e-4
    x = np.random.default_rng(0).normal(size=(2, 10, 10, 12)).astype(np.float32)
    assert new(x).shape == model(x).shape
    with pytest.raises(ConfigError, match="out of reach"):
        create(StageSpec.parse(f"lowrank:method={method},macs=0.001")).factorize(model)


@pytest.mark.parametrize("spec, words", [
    ("lowrank:ratio=0.5,macs=0.5", "one of energy, ratio and macs"),
    ("lowrank:method=hosvd", "method"),
    ("channels:fraction=1.0", "fraction"),
    ("channels:criterion=l3", "criterion"),
    ("channels:scope=model", "scope"),
    ("lowrank:energy=0.9,ratio=0.5", "one of energy, ratio and macs"),
    ("lowrank:ratio=0", "ratio"),
])
def test_bad_parameters_are_refused(spec, words):
    with pytest.raises(ConfigError, match=words):
        create(StageSpec.parse(spec))


def test_structural_stages_must_come_before_prune():
    from edgec.compress import validate

    with pytest.raises(ConfigError, match="before 'prune'"):
        validate([StageSpec.parse("prune"), StageSpec.parse("channels")])


def _loss_ranked_model(tfk):
    """A hidden layer whose channel 0 has the largest filter but feeds nothing (the loss ignores it) and
    whose channel 1 has the smallest filter but carries the output: L1 ranks them the wrong way round."""
    tfk.utils.set_random_seed(9)
    inp = tfk.Input((6,))
    hidden = tfk.layers.Dense(4, name="hidden")(inp)
    model = tfk.Model(inp, tfk.layers.Dense(1, name="out")(hidden))
    rng = np.random.default_rng(9)
    magnitude = rng.uniform(0.5, 1.0, size=(6, 4)) * rng.choice([-1.0, 1.0], size=(6, 4))  # none near zero
    w = magnitude * np.array([3.0, 0.2, 1.0, 1.0])
    model.get_layer("hidden").set_weights([w.astype(np.float32), np.zeros(4, np.float32)])
    model.get_layer("out").set_weights([np.array([[0.0], [4.0], [1.0], [1.0]], np.float32), np.zeros(1, np.float32)])
    x = rng.normal(size=(128, 6)).astype(np.float32)
    y = model.predict(x, verbose=0) + rng.normal(0, 0.5, size=(128, 1)).astype(np.float32)
    return model, x, y


def _ctx(x, y):
    from edgec.compress.base import Context
    from edgec.config import TrainingConfig

    return Context(x, y, x[:16], None if y is None else y[:16], TrainingConfig(epochs=0, batch_size=32),
                   progress=False)


def _kept(model, criterion: str, ctx):
    criterion, _, estimator = criterion.partition(":")
    spec = f"channels:fraction=0.25,criterion={criterion}" + (f",estimator={estimator}" if estimator else "")
    thin, report = create(StageSpec.parse(spec)).shrink(model, 0.25, ctx=ctx)
    kernel = model.get_layer("hidden").kernel.numpy()
    kept = thin.get_layer("hidden").kernel.numpy()
    return {c for c in range(4) if any(np.allclose(kernel[:, c], kept[:, k]) for k in range(kept.shape[1]))}, report


@pytest.mark.parametrize("criterion", ["taylor", "hessian", "hessian:hutchinson"])
def test_loss_criteria_remove_the_channel_the_loss_ignores_where_l1_does_not(tfk, criterion):
    model, x, y = _loss_ranked_model(tfk)
    kernel = model.get_layer("hidden").kernel.numpy()
    assert np.abs(kernel).sum(axis=0).argmin() == 1 and np.abs(kernel).sum(axis=0).argmax() == 0
    # the loss-least channel, measured: zeroing channel 0 leaves the loss as it is
    losses = []
    for c in range(4):
        out = model.get_layer("out").get_weights()
        cut = out[0].copy()
        cut[c] = 0
        model.get_layer("out").set_weights([cut, out[1]])
        losses.append(float(np.mean((model.predict(x, verbose=0) - y) ** 2)))
        model.get_layer("out").set_weights(out)
    assert int(np.argmin(losses)) == 0
    ctx = _ctx(x, y)
    assert _kept(model, "l1", ctx)[0] == {0, 2, 3}  # L1 removes channel 1, the one the output needs
    kept, report = _kept(model, criterion, ctx)
    assert kept == {1, 2, 3}
    assert report["importance"]["criterion"] == criterion.partition(":")[0]
    assert report["importance"]["loss_on"] == ("targets drawn from the model's own outputs (the Fisher)"
                                               if criterion == "hessian" else "labels")


def test_without_labels_hessian_uses_the_models_own_outputs_and_taylor_is_refused(tfk):
    model, x, _ = _loss_ranked_model(tfk)
    kept, report = _kept(model, "hessian", _ctx(x, None))
    assert kept == {1, 2, 3} and report["importance"]["estimator"] == "fisher"
    kept, report = _kept(model, "hessian:hutchinson", _ctx(x, None))
    assert kept == {1, 2, 3} and report["importance"]["loss_on"].startswith("the model's own outputs")
    with pytest.raises(ConfigError, match="taylor needs labels"):
        _kept(model, "taylor", _ctx(x, None))


@pytest.mark.parametrize("criterion, pruned_column", [("magnitude", 1), ("taylor", 0), ("hessian", 0)])
def test_unstructured_pruning_by_the_loss_zeroes_the_weights_the_loss_ignores(tfk, criterion, pruned_column):
    """A quarter of the hidden kernel: by magnitude, channel 1's small weights (which the output needs); by
    taylor or hessian, channel 0's large ones (which feed nothing)."""
    from edgec.compress.base import Context
    from edgec.config import TrainingConfig

    model, x, y = _loss_ranked_model(tfk)
    ctx = Context(x, y, x[:16], y[:16], TrainingConfig(epochs=1, batch_size=32, learning_rate=1e-6), progress=False)
    stage = create(StageSpec.parse(f"prune:sparsity=0.25,schedule=constant,include=hidden,criterion={criterion}"))
    pruned = stage.run(model, ctx)
    stage.check_result(pruned)
    zero = pruned.get_layer("hidden").kernel.numpy() == 0
    assert zero.sum() == 6 and zero[:, pruned_column].all()
    if criterion != "magnitude":
        assert stage.extra["criterion"] == criterion and stage.extra["mask_updates"] >= 1
        # half: weights the loss needs are masked too, and stay zero through the optimizer's steps
        half = create(StageSpec.parse(f"prune:sparsity=0.5,schedule=constant,include=hidden,criterion={criterion}"))
        zero = half.run(model, ctx).get_layer("hidden").kernel.numpy() == 0
        assert zero.sum() == 12 and zero[:, 0].all()


@pytest.mark.parametrize("spec", ["prune:sparsity=0.25,schedule=constant,include=hidden,criterion=hessian",
                                  "prune:sparsity=0.25,schedule=constant,include=hidden,criterion=taylor"])
def test_loss_ranked_pruning_runs_under_mirrored(tfk, spec):
    """Under a tf.distribute strategy the variables take gradients only in a replica: the masks' scores
    are computed there, and rank the same as without the strategy."""
    from edgec.compress.base import Context
    from edgec.config import TrainingConfig

    model, x, y = _loss_ranked_model(tfk)
    ctx = Context(x, y, x[:16], y[:16], TrainingConfig(epochs=1, batch_size=32, learning_rate=1e-6,
                                                       strategy="mirrored"), progress=False)
    stage = create(StageSpec.parse(spec))
    zero = stage.run(model, ctx).get_layer("hidden").kernel.numpy() == 0
    assert zero.sum() == 6 and zero[:, 0].all()
