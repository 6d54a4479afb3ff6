"""``distill``: knowledge distillation from a teacher model into the current model or a student file.

loss = alpha * hard-label loss + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T)).

Models ending in a softmax are distilled on their log-probabilities, which
differ from the logits only by a per-sample constant that the softmax ignores.
Without labels alpha is taken as 0: the student learns the teacher's outputs
alone. The teacher's outputs are computed once (the inputs are fixed arrays).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgec import frameworks
from edgec.check.verification import class_labels, predict
from edgec.compress import register
from edgec.compress.base import Stage, in_range
from edgec.compress.training import fit, in_strategy, optimizer, output_activation
from edgec.errors import ConfigError


@register
class Distill(Stage):
    name = "distill"
    summary = "knowledge distillation from a teacher model file (alpha, temperature), labels optional"

    @dataclasses.dataclass(frozen=True)
    class Params:
        teacher: str = ""                 # teacher model file (required)
        student: str | None = None        # a student model file; default: the current model
        alpha: float = 0.1                # weight of the hard-label loss
        temperature: float = 4.0
        epochs: int | None = None
        learning_rate: float | None = None  # default: [training] learning_rate

    def check_params(self) -> None:
        p = self.params
        if not p.teacher:
            raise self.fail("needs teacher = \"<model file>\"")
        in_range(self, "alpha", p.alpha, 0, 1)
        in_range(self, "temperature", p.temperature, 0, 1e3, lo_open=True)
        if p.epochs is not None:
            in_range(self, "epochs", p.epochs, 1, 1e6)

    def check_order(self, before: list[str]) -> None:
        super().check_order(before)
        if self.params.student and before:
            raise self.fail("with a student file it replaces the model, so it must be the first stage")

    def run(self, model, ctx):
        from edgec.load.model import load_model

        p = self.params
        tf = frameworks.tf()
        k = frameworks.tf_keras()
        safe, custom = not ctx.allow_custom_code, ctx.custom_objects
        teacher = load_model(p.teacher, safe_mode=safe, custom_objects=custom).for_stages()
        student = in_strategy(load_model(p.student, safe_mode=safe, custom_objects=custom).for_stages()
                              if p.student else model, ctx)
        n_out = int(student.outputs[0].shape[-1])
        if tuple(teacher.inputs[0].shape[1:]) != tuple(student.inputs[0].shape[1:]) \
                or int(teacher.outputs[0].shape[-1]) != n_out:
            raise ConfigError(f"stage 'distill': teacher {p.teacher} takes {tuple(teacher.inputs[0].shape[1:])} "
                              f"-> {teacher.outputs[0].shape[-1]} but the student takes "
                              f"{tuple(student.inputs[0].shape[1:])} -> {n_out}; they must match")
        if n_out < 2:
            raise ConfigError("stage 'distill' needs a classifier (two or more outputs); "
                              "for a regression model train the student on the teacher's outputs instead")
        t_soft = output_activation(teacher) == "softmax"
        s_soft = output_activation(student) == "softmax"
        alpha = p.alpha if ctx.y_train is not None else 0.0
        temp = float(p.temperature)

        def logits(out, is_prob):
            return tf.math.log(tf.clip_by_value(out, 1e-7, 1.0)) if is_prob else out

        def pack(x, y):
            t = logits(tf.constant(predict(teacher, x).astype(np.float32)), t_soft).numpy()
            hard = np.zeros((len(x), 1), np.float32) if y is None else \
                class_labels(y, n_out).astype(np.float32)[:, None]
            return np.concatenate([hard, t], axis=1)

        def loss(packed, out):
            hard, t_logits = packed[:, 0], packed[:, 1:]
            s_logits = logits(out, s_soft)
            soft_t = tf.nn.softmax(t_logits / temp)
            kl = tf.reduce_sum(soft_t * (tf.math.log(soft_t + 1e-12) - tf.nn.log_softmax(s_logits / temp)), -1)
            ce = k.losses.sparse_categorical_crossentropy(tf.cast(hard, tf.int32), s_logits, from_logits=True)
            return alpha * ce + (1 - alpha) * temp**2 * kl

        def accuracy(packed, out):
            return tf.cast(tf.equal(tf.cast(packed[:, 0], tf.int64), tf.argmax(out, -1)), tf.float32)

        y_train = pack(ctx.x_train, ctx.y_train)
        has_val = ctx.y_val is not None and len(ctx.x_val) > 0
        with ctx.scope():
            opt = optimizer(dataclasses.replace(ctx.training,
                                                learning_rate=p.learning_rate or ctx.training.learning_rate))
            student.compile(optimizer=opt, loss=loss, metrics=[accuracy] if ctx.y_train is not None else [])
        val_ctx = dataclasses.replace(ctx, y_val=pack(ctx.x_val, ctx.y_val) if has_val else None)
        logs = fit(student, val_ctx, self.name, self.epochs(ctx), y=y_train)
        self.extra = {"teacher": p.teacher, "teacher_parameters": int(teacher.count_params()),
                      "student_parameters": int(student.count_params()), "alpha_used": alpha,
                      "train_logs": logs}
        return student
