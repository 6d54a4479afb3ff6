"""How much the loss depends on each channel (or weight): first-order Taylor and the Hessian's diagonal.

- **taylor** (Molchanov et al.): removing a channel changes the loss by about the
  sum of activation x gradient over that channel. For a linear producer (or a
  BatchNorm's gamma and beta) that sum equals the sum of weight x gradient over
  the channel's parameters, which is what is computed, per batch, and its
  absolute value accumulated over the batches. Per weight: |w x grad|.
- **hessian** (optimal brain damage): the saliency 1/2 h w^2 of each parameter,
  summed over a channel's parameters, with the Hessian's diagonal h estimated
  one of two ways (``estimator``):

  - ``fisher`` (the default): the Fisher information's diagonal, the mean of
    squared per-sample gradients with the targets drawn from the model's own
    output distribution (a class from the softmax, a bit from the sigmoid, the
    output plus unit Gaussian noise for a regression). It equals the
    Gauss-Newton part of the Hessian in expectation, is never negative, and is
    exactly zero for a weight the outputs do not depend on. It needs no labels.
  - ``hutchinson``: the loss Hessian's own diagonal, E[z * Hz] over Rademacher
    vectors z, the Hessian-vector products taken through two nested
    ``tf.GradientTape``. Unbiased, but a weight coupled to larger ones (the
    same input feeding several units) gets noise larger than its diagonal:
    summed over a channel it ranks well, weight by weight it needs many probes.

``taylor`` and ``hessian`` with ``hutchinson`` need a loss: the labels when the
data has them; otherwise the model's own outputs (the unpruned model as
teacher). Against its own outputs the loss's gradient is zero, so ``taylor``
needs labels; the Hessian there is its Gauss-Newton part.
"""

from __future__ import annotations

import numpy as np

from edgec import frameworks

BATCHES = 8          # batches of the training data the estimates average over
HUTCHINSON_PROBES = 4  # Rademacher vectors per batch
FISHER_SAMPLES = 64    # per-sample gradients the Fisher averages
ESTIMATORS = ("fisher", "hutchinson")


def loss_source(model, ctx) -> tuple:
    """``(loss object, targets, what they are)``: the labels' loss, or the loss against the model's own
    outputs (the unpruned model as teacher) where the data has no labels."""
    from edgec.compress.training import loss_name, loss_object, teacher_loss

    if ctx.y_train is not None:
        return _summed(loss_object(loss_name(model, ctx))), ctx.y_train, "labels"
    from edgec.check.verification import predict

    targets = predict(model, ctx.x_train).reshape((-1, *model.outputs[0].shape[1:]))
    return _summed(loss_object(teacher_loss(model))), targets, "the model's own outputs (no labels)"


def _summed(loss):
    """``loss`` summed over the batch: a strategy's replica refuses the mean (the scores only compare)."""
    loss.reduction = frameworks.tf_keras().losses.Reduction.SUM
    return loss


def _batches(ctx, y, batches: int):
    n = len(ctx.x_train)
    size = min(ctx.training.batch_size, n)
    order = np.random.default_rng(ctx.seed).permutation(n)
    for b in range(min(batches, max(1, n // size))):
        pick = order[b * size:(b + 1) * size]
        yield ctx.x_train[pick], y[pick]


def fisher_diagonal(model, ctx, variables: list, samples: int = FISHER_SAMPLES) -> list:
    """The Fisher information's diagonal for ``variables``: the mean over ``samples`` training inputs of the
    squared gradient of the loss against a target drawn from the model's own output distribution."""
    from edgec.compress.training import output_activation

    tf = frameworks.tf()
    rng = np.random.default_rng(ctx.seed)
    act = output_activation(model)
    totals = [np.zeros(v.shape, np.float64) for v in variables]
    pick = rng.permutation(len(ctx.x_train))[:samples]
    for i in pick:
        x = tf.constant(ctx.x_train[i:i + 1])

        def sampled_loss():
            flat = tf.reshape(model(x, training=False), (-1,))
            p = flat.numpy().astype(np.float64)
            if act == "softmax":
                p = np.clip(p, 0, None) / max(p.clip(0, None).sum(), 1e-12)
                drawn = rng.choice(len(p), p=p)
                return -tf.math.log(tf.maximum(flat[drawn], 1e-12))
            if act == "sigmoid":
                bits = (rng.random(len(p)) < np.clip(p, 0, 1)).astype(np.float32)
                q = tf.clip_by_value(flat, 1e-7, 1 - 1e-7)
                return -tf.reduce_sum(bits * tf.math.log(q) + (1 - bits) * tf.math.log(1 - q))
            noisy = (p + rng.normal(size=len(p))).astype(np.float32)  # a regression: unit Gaussian noise
            return 0.5 * tf.reduce_sum(tf.square(flat - noisy))

        for total, g in zip(totals, _gradients(sampled_loss, variables)):
            if g is not None:
                total += np.square(g.numpy())
    return [t / max(len(pick), 1) for t in totals]


def _gradients(compute, variables: list) -> list:
    """The gradients of ``compute()`` (a loss) for ``variables``."""
    tf = frameworks.tf()

    def step():
        with tf.GradientTape() as tape:
            loss = compute()
        return tape.gradient(loss, variables)

    return _in_replica(step)


def _in_replica(fn) -> list:
    """``fn()``; inside a ``tf.distribute`` strategy's scope (a training stage's callback) it runs in a
    replica, where the strategy's variables take gradients, and the first replica's values are returned."""
    tf = frameworks.tf()
    if not tf.distribute.has_strategy() or not tf.distribute.in_cross_replica_context():
        return fn()
    strategy = tf.distribute.get_strategy()
    return [None if r is None else strategy.experimental_local_results(r)[0] for r in strategy.run(fn)]


def parameter_scores(model, ctx, variables: list, criterion: str, batches: int = BATCHES,
                     probes: int = HUTCHINSON_PROBES, estimator: str = "fisher") -> tuple[list, str]:
    """Per-parameter importance (arrays shaped like ``variables``) by ``criterion`` ("taylor": |w x grad|
    per batch, accumulated; "hessian": 1/2 h w^2, h by ``estimator``: the Fisher, or Hutchinson's with
    ``probes`` Rademacher vectors a batch), and what the loss was taken against. A negative Hutchinson
    estimate of h is noise (near a minimum the Hessian's diagonal is not negative): it counts as 0."""
    model, variables = on_plain_copy(model, variables)
    if criterion == "hessian" and estimator == "fisher":
        h = fisher_diagonal(model, ctx, variables)
        return ([0.5 * d * np.square(v.numpy()) for d, v in zip(h, variables)],
                "targets drawn from the model's own outputs (the Fisher)")
    tf = frameworks.tf()
    if criterion == "taylor":
        _require_labels(ctx)
    loss_fn, y, source = loss_source(model, ctx)
    rng = np.random.default_rng(ctx.seed)
    totals = [np.zeros(v.shape, np.float64) for v in variables]
    count = 0
    for x, t in _batches(ctx, y, batches):
        x = tf.constant(x)
        if criterion == "taylor":
            grads = _gradients(lambda: loss_fn(t, model(x, training=False)), variables)
            for total, g, v in zip(totals, grads, variables):
                total += np.abs(g.numpy() * v.numpy())  # per weight; channels sum the signed terms instead
        else:
            for _ in range(probes):
                z = [tf.constant(rng.choice([-1.0, 1.0], size=v.shape).astype(np.float32)) for v in variables]

                def hessian_times_z(z=z):
                    with tf.GradientTape() as outer:
                        with tf.GradientTape() as inner:
                            loss = loss_fn(t, model(x, training=False))
                        grads = inner.gradient(loss, variables)
                        gz = tf.add_n([tf.reduce_sum(g * zi) for g, zi in zip(grads, z)])
                    return outer.gradient(gz, variables)

                for total, h, zi in zip(totals, _in_replica(hessian_times_z), z):
                    total += (zi * h).numpy() if h is not None else 0.0
                count += 1
    if criterion == "hessian":
        return [0.5 * np.maximum(t / max(count, 1), 0.0) * np.square(v.numpy())
                for t, v in zip(totals, variables)], source
    return totals, source


def channel_taylor(model, ctx, groups: dict, batches: int = BATCHES) -> tuple[dict, str]:
    """Per channel: sum over batches of |sum over the channel's parameters of w x grad|. ``groups`` maps a
    key to ``[(variable, channel axis)]``, the parameters whose channels are removed together."""
    tf = frameworks.tf()
    _require_labels(ctx)
    loss_fn, y, source = loss_source(model, ctx)
    flat = [v for parts in groups.values() for v, _ in parts]
    model, plain = on_plain_copy(model, flat)
    swap = {id(v): p for v, p in zip(flat, plain)}
    groups = {key: [(swap[id(v)], axis) for v, axis in parts] for key, parts in groups.items()}
    flat = plain
    scores: dict = {key: 0.0 for key in groups}
    for x, t in _batches(ctx, y, batches):
        batch_loss = lambda x=x, t=t: loss_fn(t, model(tf.constant(x), training=False))  # noqa: E731
        grads = dict(zip((id(v) for v in flat), _gradients(batch_loss, flat)))
        for key, parts in groups.items():
            per_batch = sum(_per_channel(grads[id(v)].numpy() * v.numpy(), axis) for v, axis in parts)
            scores[key] = scores[key] + np.abs(per_batch)
    return scores, source


def channel_hessian(model, ctx, groups: dict, batches: int = BATCHES, estimator: str = "fisher") -> tuple[dict, str]:
    """Per channel: the sum of 1/2 h w^2 over the channel's parameters (see :func:`parameter_scores`)."""
    flat = [v for parts in groups.values() for v, _ in parts]
    per_weight, source = parameter_scores(model, ctx, flat, "hessian", batches, estimator=estimator)
    by_id = dict(zip((id(v) for v in flat), per_weight))
    return {key: sum(_per_channel(by_id[id(v)], axis) for v, axis in parts) for key, parts in groups.items()}, source


def on_plain_copy(model, variables: list) -> tuple:
    """``(model, variables)``, or for a model trained under a ``tf.distribute`` strategy (whose variables take
    no gradient outside a replica) a copy with plain variables and its variables at the same places: the
    scores are the same numbers, computed on the copy."""
    tf = frameworks.tf()
    if tf.distribute.has_strategy() or not any(isinstance(v, tf.distribute.DistributedValues) for v in variables):
        return model, variables  # plain, or inside the strategy's scope (gradients are taken in a replica)
    from edgec.compress.training import copy_model

    where = [next(i for i, w in enumerate(model.weights) if w is v) for v in variables]
    copy = copy_model(model)
    return copy, [copy.weights[i] for i in where]


def _require_labels(ctx) -> None:
    if ctx.y_train is None:
        from edgec.errors import ConfigError

        raise ConfigError("criterion=taylor needs labels: against the model's own outputs its gradients are zero; "
                          "put labels in the data ('y' in the .npz), or use criterion=hessian")


def _per_channel(values: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(values, axis, -1).reshape(-1, values.shape[axis]).sum(axis=0)
