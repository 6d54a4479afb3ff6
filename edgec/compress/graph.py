"""Channel dependencies of a tf_keras functional model, and rebuilding it thinner.

Every tensor's last axis is described by a *layout*: ``(repeat, spaces)``,
where ``spaces`` are the channel spaces concatenated along the axis and
``repeat`` > 1 only after a Flatten (the flat index is
``position * channels + offset of the space + channel``). A channel space is
born at a layer that makes new channels (Conv, Dense: its *producers*); layers
that keep channel ``i`` as channel ``i`` (BatchNorm, activations, pooling,
depthwise convolution) pass the layout through; element-wise merges (Add,
Multiply, ...) tie their inputs' spaces into one, so a residual group is
pruned together; Concatenate joins layouts; Flatten repeats one.

A space is *frozen* (never pruned) when it touches anything this module does
not understand — a model input or output, Reshape, a custom layer, a layer
called twice, a channels-first layer, a depth multiplier — and the report
lists why. Rebuilding edits the model's config (filters, units) and copies
the surviving slices of every weight.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np

from edgec import frameworks
from edgec.errors import ConfigError

# Layers that keep channel i as channel i and have no weights tied to channels.
_PASS = {
    "Activation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D",
}
_MERGE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
_CONV = {"Conv1D", "Conv2D", "Conv3D"}
_DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}
_SEPARABLE = {"SeparableConv1D", "SeparableConv2D"}


@dataclasses.dataclass
class Space:
    """One set of channels that must be pruned together."""

    size: int
    producers: list = dataclasses.field(default_factory=list)   # layers whose outputs are these channels
    scales: list = dataclasses.field(default_factory=list)      # BatchNorm layers on these channels
    frozen: list = dataclasses.field(default_factory=list)      # reasons it cannot be pruned


class ChannelGraph:
    """The channel spaces of a model and, per layer, the layouts its weights are sliced by."""

    def __init__(self, model):
        self.model = as_functional(model)
        self.config = self.model.get_config()
        self.spaces: list[Space] = []
        self._parent: list[int] = []
        self.inputs: dict[str, tuple] = {}    # layer -> layout of its (single) input
        self.outputs: dict[str, tuple] = {}   # layer -> layout of its output
        self.kinds: dict[str, str] = {}       # layer -> producer | depthwise | separable | scale | pass | ...
        self.unfollowed: dict[str, str] = {}  # layers with weights that are not followed -> why
        self._analyze()

    # -- union-find over spaces -------------------------------------------------
    def root(self, s: int) -> int:
        while self._parent[s] != s:
            self._parent[s] = self._parent[self._parent[s]]
            s = self._parent[s]
        return s

    def _new(self, size: int, producer: str | None = None, frozen: str | None = None) -> int:
        self.spaces.append(Space(size, [producer] if producer else [], [], [frozen] if frozen else []))
        self._parent.append(len(self.spaces) - 1)
        return len(self.spaces) - 1

    def _union(self, a: int, b: int) -> None:
        a, b = self.root(a), self.root(b)
        if a == b:
            return
        sa, sb = self.spaces[a], self.spaces[b]
        sa.producers += sb.producers
        sa.scales += sb.scales
        sa.frozen += sb.frozen
        self._parent[b] = a

    def _freeze(self, layout: tuple, reason: str) -> None:
        for s in layout[1]:
            self.spaces[self.root(s)].frozen.append(reason)

    def _unite(self, layouts: list[tuple], layer: str) -> tuple | None:
        first = layouts[0]
        for other in layouts[1:]:
            if other[0] != first[0] or len(other[1]) != len(first[1]) or \
                    any(self.spaces[self.root(a)].size != self.spaces[self.root(b)].size
                        for a, b in zip(first[1], other[1])):
                return None
            for a, b in zip(first[1], other[1]):
                self._union(a, b)
        return first

    # -- analysis -----------------------------------------------------------------
    def _analyze(self) -> None:
        layers = {layer.name: layer for layer in self.model.layers}
        tensors: dict[tuple, tuple] = {}
        # (entry, node index) in an order where every input exists: config order, but a layer's later
        # nodes (a shared layer) can depend on layers listed after it
        pending = [(entry, i) for entry in self.config["layers"] for i in range(max(1, len(entry["inbound_nodes"])))]
        while pending:
            ready = [(e, i) for e, i in pending if all((n[0], n[1], n[2]) in tensors
                                                       for n in (e["inbound_nodes"][i] if e["inbound_nodes"] else []))]
            if not ready:
                raise ConfigError(f"model '{self.model.name}': cannot order its layers' calls; "
                                  "channel pruning needs a plain functional graph")
            for entry, i in ready:
                pending.remove((entry, i))
                tensors[(entry["name"], i, 0)] = self._node(entry, i, layers[entry["name"]], tensors)
        for name, node, index in self.config["output_layers"]:
            self._freeze(tensors[(name, node, index)], f"'{name}' gives a model output")

    def _node(self, entry: dict, i: int, layer, tensors: dict) -> tuple:
        """The layout of the output of call ``i`` of a layer."""
        name, nodes = entry["name"], entry["inbound_nodes"]
        if not nodes:  # InputLayer
            shape = layer.output_shape[0] if isinstance(layer.output_shape, list) else layer.output_shape
            self.kinds[name] = "input"
            return (1, (self._new(int(shape[-1]), frozen=f"'{name}' is a model input"),))
        ins = [tensors[(n[0], n[1], n[2])] for n in nodes[i]]
        if len(nodes) > 1:
            out = self._unknown(name, ins, layer, f"'{name}' is called more than once")
        else:
            out = self._layer(name, entry["class_name"], layer, ins)
        self.outputs[name] = out
        return out

    def _unknown(self, name: str, ins: list, layer, reason: str) -> tuple:
        for layout in ins:
            self._freeze(layout, reason)
        self.kinds[name] = "unknown"
        if layer.weights:
            self.unfollowed[name] = reason
        shape = layer.output_shape
        if isinstance(shape, list):  # several outputs: none of them is followed
            return (1, (self._new(1, frozen=reason),))
        return (1, (self._new(int(shape[-1]) if shape[-1] else 1, frozen=reason),))

    def _layer(self, name: str, cls: str, layer, ins: list) -> tuple:
        cfg = layer.get_config()
        last = cfg.get("data_format", "channels_last") == "channels_last"
        single = ins[0] if len(ins) == 1 else None
        if cls in _CONV and last and cfg.get("groups", 1) == 1 and single or cls == "Dense" and single:
            self.kinds[name], self.inputs[name] = "producer", single
            return (1, (self._new(int(layer.kernel.shape[-1]), producer=name),))
        if cls in _SEPARABLE and last and cfg.get("depth_multiplier") == 1 and single and single[0] == 1:
            self.kinds[name], self.inputs[name] = "separable", single
            return (1, (self._new(int(cfg["filters"]), producer=name),))
        if cls in _DEPTHWISE and last and cfg.get("depth_multiplier") == 1 and single and single[0] == 1:
            self.kinds[name], self.inputs[name] = "depthwise", single
            return single
        if cls == "BatchNormalization" and single and single[0] == 1 and _last_axis(cfg["axis"], layer):
            self.kinds[name], self.inputs[name] = "scale", single
            self.spaces[self.root(single[1][0])].scales.append(name) if len(single[1]) == 1 else None
            return single
        if cls in _PASS and (last or "data_format" not in cfg) and single and single[0] == 1 \
                and not (cls == "Activation" and cfg.get("activation") == "softmax"):
            self.kinds[name] = "pass"
            return single
        if cls in _MERGE and len(ins) > 1:
            out = self._unite(ins, name)
            if out is not None:
                self.kinds[name] = "merge"
                return out
        if cls == "Concatenate" and len(ins) > 1 and all(t[0] == 1 for t in ins):
            rank = len(layer.output_shape)
            if cfg["axis"] in (-1, rank - 1):
                self.kinds[name] = "concat"
                return (1, tuple(s for t in ins for s in t[1]))
            out = self._unite(ins, name)
            if out is not None:
                self.kinds[name] = "merge"
                return out
        if cls == "Flatten" and single and single[0] == 1 and len(layer.input_shape) >= 3 \
                and cfg.get("data_format", "channels_last") == "channels_last":
            self.kinds[name] = "flatten"
            return (int(np.prod(layer.input_shape[1:-1])), single[1])
        return self._unknown(name, ins, layer, f"'{name}' ({cls}) is not followed channel by channel")

    # -- results ------------------------------------------------------------------
    def groups(self) -> list[int]:
        """Root ids of all spaces, in order of first appearance."""
        seen = []
        for s in range(len(self.spaces)):
            r = self.root(s)
            if r not in seen:
                seen.append(r)
        return seen

    def prunable(self) -> list[int]:
        return [r for r in self.groups() if not self.spaces[r].frozen and self.spaces[r].producers]

    def frozen_producers(self) -> dict[str, str]:
        """Layer -> why its channels are left as they are."""
        out = dict(self.unfollowed)
        for r in self.groups():
            space = self.spaces[r]
            for p in space.producers:
                if space.frozen:
                    out[p] = space.frozen[0]
        return out

    def indices(self, layout: tuple, keep: dict[int, np.ndarray]) -> np.ndarray:
        """Positions along the last axis that survive in a tensor of ``layout``."""
        repeat, spaces = layout
        sizes = [self.spaces[self.root(s)].size for s in spaces]
        total = sum(sizes)
        offsets = np.cumsum([0, *sizes[:-1]])
        parts = [p * total + off + self._kept(s, keep) for p in range(repeat) for s, off in zip(spaces, offsets)]
        return np.concatenate(parts).astype(np.int64)

    def _kept(self, s: int, keep: dict[int, np.ndarray]) -> np.ndarray:
        r = self.root(s)
        return np.asarray(keep[r]) if r in keep else np.arange(self.spaces[r].size)

    def rebuild(self, keep: dict[int, np.ndarray], scope=None):
        """A new model with only the ``keep`` channels of each pruned space (root id -> sorted indices);
        other spaces keep all their channels. Built inside ``scope`` (a tf.distribute scope) if given."""
        config = self.model.get_config()
        for entry in config["layers"]:
            if self.kinds.get(entry["name"]) in ("producer", "separable"):
                out = self.outputs[entry["name"]][1][0]
                n = len(self._kept(out, keep))
                entry["config"]["filters" if "filters" in entry["config"] else "units"] = n
        weights = {layer.name: self._slice(layer, layer.get_weights(), keep) for layer in self.model.layers}
        return from_config(self.model, config, weights, scope)

    def _slice(self, layer, weights: list, keep) -> list:
        kind = self.kinds.get(layer.name)
        if kind == "producer":
            kin = self.indices(self.inputs[layer.name], keep)
            kout = self._kept(self.outputs[layer.name][1][0], keep)
            kernel = np.take(np.take(weights[0], kin, axis=-2), kout, axis=-1)
            return [kernel, *(np.take(w, kout, axis=0) for w in weights[1:])]
        if kind == "separable":
            kin = self.indices(self.inputs[layer.name], keep)
            kout = self._kept(self.outputs[layer.name][1][0], keep)
            depthwise = np.take(weights[0], kin, axis=-2)
            pointwise = np.take(np.take(weights[1], kin, axis=-2), kout, axis=-1)
            return [depthwise, pointwise, *(np.take(w, kout, axis=0) for w in weights[2:])]
        if kind == "depthwise":
            idx = self.indices(self.inputs[layer.name], keep)
            return [np.take(weights[0], idx, axis=-2), *(np.take(w, idx, axis=0) for w in weights[1:])]
        if kind == "scale":
            idx = self.indices(self.inputs[layer.name], keep)
            return [np.take(w, idx, axis=0) for w in weights]
        return weights


def _last_axis(axis, layer) -> bool:
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    return isinstance(axis, int) and axis in (-1, len(layer.input_shape) - 1)


def as_functional(model):
    """``model`` as a functional model (a Sequential one is rewritten; a subclassed one is refused)."""
    k = frameworks.tf_keras()
    if isinstance(model, k.Sequential):
        model = k.Model(model.inputs, model.outputs, name=model.name)
    if not getattr(model, "_is_graph_network", False):
        raise ConfigError(f"model '{model.name}' is a subclassed Keras model, whose layers cannot be "
                          "followed; rebuild it with the functional or Sequential API")
    return model


def from_config(model, config: dict, weights: dict, scope=None):
    """A new model from ``config`` (an edited ``model.get_config()``, its old ``build_config``s
    dropped) with ``weights[layer name]`` set; built inside ``scope`` (a tf.distribute scope) if given."""
    k = frameworks.tf_keras()
    for entry in config["layers"]:
        entry.pop("build_config", None)  # shapes follow from the graph; the old ones may be wrong now
    custom = {type(layer).__name__: type(layer) for layer in model.layers}
    with scope if scope is not None else contextlib.nullcontext():
        new = k.Model.from_config(config, custom_objects=custom)
        for name, values in weights.items():
            if values:
                new.get_layer(name).set_weights(values)
    return new
