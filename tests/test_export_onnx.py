"""FP32 ONNX export: the deploy graph only, named dynamic-batch I/O, metadata inside, and
PyTorch parity through ONNX Runtime on real faces."""

from __future__ import annotations

import onnx
import pytest
import torch

from dmlcsr.checkpoint import EDGE_PREFIX
from dmlcsr.core.labels import CELEBAMASK_HQ
from dmlcsr.core.metadata import METADATA_KEY
from dmlcsr.errors import DmlcsrError
from dmlcsr.export.onnx_export import deploy_metadata, export_onnx, read_metadata
from dmlcsr.networks.dml_csr import DML_CSR
from dmlcsr.runtime.backends import open_backend


def test_training_checkpoint_has_edge_keys_and_the_graph_has_none(demo_training_checkpoint, demo_onnx):
    state = torch.load(demo_training_checkpoint, weights_only=True)
    assert any(k.startswith(EDGE_PREFIX) for k in state), "fixture must be a training checkpoint"
    model = onnx.load(str(demo_onnx))
    names = [n.name for n in model.graph.node] + [i.name for i in model.graph.initializer]
    names += [v for n in model.graph.node for v in (*n.input, *n.output)]
    assert names and not [n for n in names if "edge" in n.lower()]
    assert not [p for n in model.graph.node for p in n.metadata_props], "exporter debug info left in"
    ops = {n.op_type for n in model.graph.node}
    assert "BatchNormalization" not in ops and "Identity" not in ops, "norms not folded into convs"


def test_io_is_named_float32_dynamic_batch(demo_onnx):
    model = onnx.load(str(demo_onnx))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == "logits"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [3, 473, 473]
    out_dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert out_dims[0] == dims[0] and out_dims[1:] == [19, 119, 119]


def test_metadata_round_trips(demo_onnx, demo_training_checkpoint):
    from dmlcsr.checkpoint import file_sha256

    meta = read_metadata(demo_onnx)
    assert meta.num_classes == 19 and meta.label_names == list(CELEBAMASK_HQ.names)
    assert meta.checkpoint_sha256 == file_sha256(demo_training_checkpoint)
    assert meta.precision == "fp32" and meta.preprocessing.input_size == (473, 473)
    assert meta.preprocessing.channel_order == "BGR" and meta.input_name == "input"
    backend = open_backend(demo_onnx, "cpu", engine="onnxruntime")
    assert backend.metadata == meta
    keys = [p.key for p in onnx.load(str(demo_onnx), load_external_data=False).metadata_props]
    assert keys.count(METADATA_KEY) == 1


def test_model_with_edge_branch_is_refused(tmp_path):
    with pytest.raises(DmlcsrError, match="edge branch"):
        export_onnx(DML_CSR(11, trained=True), tmp_path / "x.onnx", deploy_metadata(11), input_size=(65, 65))


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DmlcsrError, match="output directory"):
        export_onnx(DML_CSR(11, trained=False), blocker / "sub" / "x.onnx", deploy_metadata(11), input_size=(65, 65))


def test_too_small_input_is_refused(tmp_path):
    with pytest.raises(DmlcsrError, match="input-size"):
        export_onnx(DML_CSR(11, trained=False), tmp_path / "x.onnx", deploy_metadata(11), input_size=(473, 16))


@pytest.mark.slow
def test_a_non_square_export_keeps_height_and_width(tmp_path, face_paths):
    """(H, W) reaches the graph, the metadata and the runtime: a 97 x 129 export runs a real
    photo through ONNX Runtime as PyTorch does (seeded weights: logits compared, not labels)."""
    import numpy as np

    from dmlcsr.export.face_inputs import preprocess_file

    size = (97, 129)
    torch.manual_seed(0)
    model = DML_CSR(11, trained=False).eval()
    path = export_onnx(model, tmp_path / "wide.onnx", deploy_metadata(11), input_size=size)
    assert read_metadata(path).preprocessing.input_size == size
    (inp,) = onnx.load(str(path)).graph.input
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim][1:] == [3, *size]
    batch = preprocess_file(face_paths[0], size)[None]
    with torch.no_grad():
        expected = model(torch.from_numpy(batch)).numpy()
    got = open_backend(path, "cpu", engine="onnxruntime").run_single(batch)
    assert expected.shape == got.shape == (1, 11, 25, 33)
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, float(np.abs(expected).max()))
