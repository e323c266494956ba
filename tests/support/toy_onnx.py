"""Small real ONNX models shaped like DML-CSR (N x 3 x S x S -> N x C x ceil(S/4) x ceil(S/4)).

One strided convolution with seeded weights: ONNX Runtime runs it in milliseconds, so the
runtime's mechanics (batching, fixed batches, threads, the CLI, refusals of malformed
models) are tested on real inference without DML-CSR's seconds per forward. Parity with
DML-CSR itself is tested on the exported demo model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dmlcsr.core.labels import default_label_set
from dmlcsr.core.metadata import METADATA_KEY, ModelMetadata, Preprocessing


def toy_parsing_onnx(path: Path, num_classes: int = 19, input_size: tuple[int, int] = (97, 97),
                     batch: int | None = None,
                     metadata: ModelMetadata | None | bool = True, graph_classes: int | None = None,
                     nan_output: bool = False, seed: int = 0) -> Path:
    """Write the toy model to ``path``. ``metadata=True`` stores matching dmlcsr metadata, an
    instance stores that, False/None none; ``graph_classes`` makes the graph disagree with
    the metadata; ``nan_output`` multiplies the logits by NaN."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    classes = graph_classes or num_classes
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((classes, 3, 4, 4)).astype(np.float32)
    height, width = input_size
    batch_dim = batch if batch else "batch"
    nodes = [helper.make_node("Conv", ["input", "weight"], ["conv" if nan_output else "logits"],
                              strides=[4, 4], pads=[0, 0, -height % 4, -width % 4])]
    initializers = [numpy_helper.from_array(weight, "weight")]
    if nan_output:
        nodes.append(helper.make_node("Mul", ["conv", "nan"], ["logits"]))
        initializers.append(numpy_helper.from_array(np.array([np.nan], np.float32), "nan"))
    graph = helper.make_graph(
        nodes, "toy_parsing",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch_dim, 3, height, width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       [batch_dim, classes, -(-height // 4), -(-width // 4)])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if metadata is True:
        labels = default_label_set(num_classes)
        metadata = ModelMetadata(num_classes, list(labels.names),
                                 preprocessing=Preprocessing(input_size=(height, width)))
    if metadata:
        model.metadata_props.add(key=METADATA_KEY, value=metadata.to_json())
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
