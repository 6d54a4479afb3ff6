"""Refuse a SavedModel whose graph reaches outside the model, before TensorFlow loads it.

A SavedModel is a TensorFlow program: loading one runs some of its functions
(a restored resource's initializer, for example), and converting it runs more.
A file from a pull request could write or read files on the CI machine that way
(``tests/test_hardening.py`` has one whose initializer writes a file at load).
So every op in ``saved_model.pb`` (graph and function library) is checked
against TensorFlow's op registry before any loader sees the file:

- ops that touch files, processes, Python or the network are refused wherever
  they are, except the checkpoint ops in the save and restore functions every
  SavedModel carries (named by its ``saver_def``; TensorFlow 2 loading does
  not call them, and they must hold only checkpoint ops);
- any other stateful op must be one a Keras model uses (variables, random
  numbers for dropout, control flow, hash tables, cuDNN's RNN kernels);
- an op TensorFlow does not know is refused (it could not run anyway).
"""

from __future__ import annotations

from pathlib import Path

from edgec.errors import ModelLoadError

# Stateful ops that only touch the model's own variables, random state and control flow
# (besides the families below).
KERAS_STATEFUL = frozenset({
    "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
    "VarIsInitializedOp", "DestroyResourceOp", "DisableCopyOnRead", "VariableV2", "Variable", "Assign",
    "AssignAdd", "AssignSub", "IsVariableInitialized", "StatefulPartitionedCall", "PartitionedCall", "If",
    "While", "Case", "For", "StatelessIf", "StatelessWhile", "StatelessCase", "NoOp", "Assert", "Placeholder",
    "PlaceholderWithDefault", "TruncatedNormal", "Multinomial", "ParameterizedTruncatedNormal", "RngSkip",
    "RngReadAndSkip", "NonDeterministicInts", "HashTableV2", "MutableHashTableV2", "MutableDenseHashTableV2",
    "MutableHashTableOfTensorsV2", "LookupTableFindV2", "LookupTableSizeV2", "LookupTableImportV2",
    "LookupTableInsertV2", "LookupTableExportV2", "LookupTableRemoveV2", "InitializeTableV2",
    "AnonymousHashTable", "AnonymousMutableHashTable", "AnonymousMutableDenseHashTable",
    "AnonymousMutableHashTableOfTensors", "CheckNumerics", "CheckNumericsV2", "Empty", "GuaranteeConst",
    "DeviceIndex", "IsTensorFloat32Enabled", "ResourceStridedSliceAssign", "ResourceCountUpTo", "VariableShape",
    "DeepCopy", "TemporaryVariable", "_Arg", "_Retval", "_DeviceArg", "_DeviceRetval", "_ReadVariablesOp",
    "_VarHandlesOp", "_If", "_While", "MutexV2", "MutexLock", "ConsumeMutexLock",
})
# Families of stateful ops that compute on the model's own state: cuDNN RNN kernels
# (Keras LSTM/GRU), optimizer and scatter updates of variables, tensor arrays, random numbers.
KERAS_STATEFUL_PREFIXES = ("Cudnn", "ResourceApply", "ResourceSparseApply", "ResourceScatter", "ResourceGather",
                           "TensorArray", "TensorList", "StatefulRandom", "StatefulUniform",
                           "StatefulStandardNormal", "StatefulTruncatedNormal", "Random")
# Ops that read or write files, run Python, print, log summaries or talk to other
# processes, stateful or not: refused anywhere outside the saver functions.
OUTSIDE = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "Print", "PrintV2",
    "PyFunc", "PyFuncStateless", "EagerPyFunc",
    "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints",
    "LoadAndRemapMatrix", "GenerateVocabRemapping", "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2", "DecodeProtoV2", "EncodeProto",
    "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "SqlDataset",
    "ExperimentalSqlDataset", "LMDBDataset", "ExperimentalLMDBDataset", "CacheDataset", "CacheDatasetV2",
    "SnapshotDataset", "SnapshotDatasetV2", "ExperimentalSnapshotDataset", "SaveDataset", "SaveDatasetV2",
    "LoadDataset", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord",
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "TFRecordReader",
    "TFRecordReaderV2", "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "LMDBReader",
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
    "DebugNumericSummaryV2",
})
# What the save and restore functions of a SavedModel hold.
CHECKPOINT = frozenset({
    "SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "StaticRegexFullMatch",
    "Select", "Const", "Identity", "IdentityN", "NoOp", "Pack", "ReadVariableOp", "AssignVariableOp",
    "DisableCopyOnRead", "StatefulPartitionedCall", "PartitionedCall", "Placeholder",
})


def _registry():
    from edgec import frameworks

    frameworks.tf()  # TensorFlow's import, with its C++ start-up noise kept off stderr
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get


def _called(nodes) -> list[str]:
    """The function names the ``attr`` values of ``nodes`` refer to (single and list attributes)."""
    names = []
    for node in nodes:
        for attr in node.attr.values():
            if attr.func.name:
                names.append(attr.func.name)
            names += [f.name for f in attr.list.func if f.name]
    return names


def _closure(roots, library: dict) -> set[str]:
    """``roots`` and every function of the library they call, transitively."""
    todo, seen = list(roots), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in library:
            continue
        seen.add(name)
        todo += _called(library[name].node_def)
    return seen


def _saver_functions(meta_graph, library: dict) -> set[str]:
    """The functions only the ``saver_def``'s save and restore nodes reach.

    Told apart by the graph's structure, not by what the file names: a function that
    anything else reaches (another graph node, a function the object graph restores, such
    as a resource's initializer, which TensorFlow runs at load) is not a saver function,
    even if a save or restore node names it too.
    """
    saver = meta_graph.saver_def
    heads = {saver.save_tensor_name.split(":")[0], saver.restore_op_name.split(":")[0]} - {""}
    graph = meta_graph.graph_def.node
    from_saver = _closure(_called(n for n in graph if n.name in heads), library)
    loaded = set(meta_graph.object_graph_def.concrete_functions.keys())
    loaded |= {f for node in meta_graph.object_graph_def.nodes for f in _object_functions(node)}
    from_elsewhere = _closure(_called(n for n in graph if n.name not in heads) + sorted(loaded), library)
    return from_saver - from_elsewhere


def _object_functions(node) -> list[str]:
    """Functions a SavedObject (a restored function, a bare concrete function) names."""
    kind = node.WhichOneof("kind")
    if kind == "function":
        return list(node.function.concrete_functions)
    if kind == "bare_concrete_function":
        return [node.bare_concrete_function.concrete_function_name]
    return []


def refused_ops(saved_model) -> list[tuple[str, str, str]]:
    """``(op, where, why)`` for every op of a parsed SavedModel proto that edgec refuses."""
    op_def = _registry()
    found = []
    for meta_graph in saved_model.meta_graphs:
        library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
        saver = _saver_functions(meta_graph, library)
        places = [("the graph", meta_graph.graph_def.node, False)]
        places += [(f"function {name}", f.node_def, name in saver) for name, f in library.items()]
        for where, nodes, is_saver in places:
            for node in nodes:
                op = node.op
                if op in library:  # a call of a function of the file, checked on its own
                    continue
                if is_saver:
                    if op not in CHECKPOINT:
                        found.append((op, where, "a save/restore function may hold only checkpoint ops"))
                    continue
                definition = op_def(op)
                if definition is None:
                    found.append((op, where, "TensorFlow has no such op"))
                elif op in OUTSIDE:
                    found.append((op, where, "it reaches outside the model (files, Python, printing or "
                                             "other processes)"))
                elif (definition.is_stateful and op not in KERAS_STATEFUL
                      and not op.startswith(KERAS_STATEFUL_PREFIXES)):
                    found.append((op, where, "it is a stateful op no Keras layer uses"))
    return found


def parse(path: Path):
    """The ``SavedModel`` proto of the directory ``path`` (binary or text form).

    Raises:
        ModelLoadError: it does not parse.
    """
    from google.protobuf import text_format

    from edgec import frameworks

    frameworks.tf()  # TensorFlow's import, with its C++ start-up noise kept off stderr
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    binary, text = path / "saved_model.pb", path / "saved_model.pbtxt"
    try:
        if binary.exists():
            proto.ParseFromString(binary.read_bytes())
        elif text.exists():  # TensorFlow loads the text form too
            text_format.Parse(text.read_text("utf-8"), proto)
    except Exception:
        raise ModelLoadError(f"{path} is not a readable SavedModel (its saved_model.pb does not parse); "
                             "save the model again with model.save() or tf.saved_model.save()") from None
    return proto


def check(path: Path) -> None:
    """Refuse the SavedModel directory ``path`` if its graph holds an op :func:`refused_ops` names.

    Raises:
        ModelLoadError: naming the op, where it is, why, and what to do.
    """
    found = refused_ops(parse(path))
    if found:
        op, where, why = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ModelLoadError(f"{path}: op {op} in {where} is refused: {why}{more}; a SavedModel is a program "
                             "and edgec does not run one that can touch this machine; export the model from its "
                             "Keras layers again (model.save('model.keras')), or pass --allow-custom-code if "
                             "you trust the file")
