"""The metadata schema check: every damaged or foreign document is a one-line DmlcsrError
naming the field, never a traceback; checkpoints with a class count uint8 label maps
cannot hold are refused at load."""

from __future__ import annotations

import json
import re
from dataclasses import fields

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmlcsr.checkpoint import CLASSIFIER_KEY, infer_num_classes, load_dml_csr, load_eagrnet
from dmlcsr.core.labels import MAX_CLASSES, MIN_CLASSES
from dmlcsr.core.metadata import (
    MAX_METADATA_CHARS,
    MODEL_RULES,
    PREPROCESSING_RULES,
    ModelMetadata,
    Preprocessing,
)
from dmlcsr.errors import DmlcsrError

NAMES = [f"class_{i}" for i in range(19)]


def doc(**changes) -> str:
    """A valid 19-class document as JSON text, with top-level or preprocessing fields changed."""
    data = json.loads(ModelMetadata(19, NAMES).to_json())
    for key, value in changes.items():
        if key in data["preprocessing"]:
            data["preprocessing"][key] = value
        else:
            data[key] = value
    return json.dumps(data)  # allow_nan: Python's json writes and reads NaN


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message and "\n" not in message and "\r" not in message, message
    return message


BAD_DOCUMENTS = [
    ("list", "[1, 2]", "must be a JSON object, found a list"),
    ("string", '"dmlcsr"', "must be a JSON object, found 'dmlcsr' (string)"),
    ("number", "19", "must be a JSON object, found 19 (integer)"),
    ("null", "null", "must be a JSON object, found null"),
    ("0 classes", doc(num_classes=0, label_names=[]), "num_classes must be an integer in 2..256"),
    ("300 classes", doc(num_classes=300, label_names=["x"] * 300),
     "num_classes must be an integer in 2..256 (label maps are uint8 PNGs), found 300"),
    ("classes as string", doc(num_classes="19"), "num_classes must be an integer in 2..256 (label maps are "
                                                  "uint8 PNGs), found '19' (string)"),
    ("classes as bool", doc(num_classes=True), "num_classes must be an integer in 2..256 (label maps are "
                                               "uint8 PNGs), found true"),
    ("too few names", doc(label_names=NAMES[:3]), "label_names must be exactly 19 strings, one per class, "
                                                  "found a list of 3"),
    ("non-string names", doc(label_names=NAMES[:18] + [7]), "label_names must be a list of names, one per class"),
    ("names as object", doc(label_names={"a": 1}), "label_names must be a list of names"),
    ("empty input name", doc(input_name=""), "input_name must be a non-empty string"),
    ("stride 0", doc(output_stride=0), "output_stride must be a positive integer"),
    ("extra as list", doc(extra=[]), "extra must be an object"),
    ("schema 0", doc(schema_version=0), "schema_version must be a positive integer"),
    ("newer schema", doc(schema_version=2), "schema 2 is newer than this toolkit understands (1); upgrade dmlcsr"),
    ("unknown field", doc(colour="red"), "does not match this toolkit (unknown field 'colour')"),
    ("unknown preprocessing field", doc(preprocessing={"gamma": 2}),
     "does not match this toolkit (unknown field preprocessing.'gamma')"),
    ("no num_classes", '{"label_names": ["a", "b"]}', "does not match this toolkit (missing num_classes)"),
    ("input size 0", doc(input_size=[0, 0]), "preprocessing.input_size must be two integers in 2..8192"),
    ("input size scalar 0", doc(input_size=0), "preprocessing.input_size must be two integers in 2..8192"),
    ("one side", doc(input_size=[473]), "preprocessing.input_size must be two integers in 2..8192 (height, "
                                        "width), found a list [473]"),
    ("side as text", doc(input_size=[473, "x"]), "preprocessing.input_size must be two integers"),
    ("side 1e9", doc(input_size=[1e9, 473]), "preprocessing.input_size must be two integers"),
    ("side as bool", doc(input_size=[True, 473]), "preprocessing.input_size must be two integers"),
    ("std 0", doc(std=[0.229, 0, 0.225]), "preprocessing.std must be three finite numbers above 0"),
    ("mean NaN", doc(mean=[float("nan"), 0.456, 0.406]), "preprocessing.mean must be three finite numbers, "
                                                          "found a list [nan"),
    ("scale inf", doc(scale=float("inf")), "preprocessing.scale must be a finite number above 0, found inf"),
    ("crop as number", doc(crop=1), "preprocessing.crop must be a string"),
    ("preprocessing as list", doc(preprocessing=[473, 473]), "preprocessing must be an object, found a list"),
    ("preprocessing null", doc(preprocessing=None), "preprocessing must be an object, found null"),
    ("100000 deep", "[" * 100_000 + "]" * 100_000, "JSON nested too deeply to read"),
    ("over 1 MB", " " * (MAX_METADATA_CHARS + 1) + "{}", "over the 1,000,000 this toolkit reads"),
    ("not JSON", "{not json", "not valid JSON"),
    ("5000-digit int", '{"num_classes": 1' + "0" * 5000 + "}", "not valid JSON"),
    ("not UTF-8", b"\xff\xfe\x00{", "not valid JSON"),
]


@pytest.mark.parametrize("text, phrase", [case[1:] for case in BAD_DOCUMENTS], ids=[c[0] for c in BAD_DOCUMENTS])
def test_bad_documents_are_one_line_errors_naming_field_and_fix(text, phrase):
    with pytest.raises(DmlcsrError, match=re.escape(phrase)) as exc:
        ModelMetadata.from_json(text)
    message = one_line(exc)
    assert "dmlcsr" in message and len(message) < 400, message


def test_round_trip_is_exact():
    meta = ModelMetadata(19, NAMES)
    assert ModelMetadata.from_json(meta.to_json()) == meta
    custom = ModelMetadata(11, NAMES[:11], precision="int8-qdq", extra={"calibration": {"images": 8}},
                           preprocessing=Preprocessing(input_size=(97, 129), channel_order="RGB"))
    assert ModelMetadata.from_json(custom.to_json()) == custom


def test_older_documents_without_optional_fields_load_with_defaults():
    assert ModelMetadata.from_json('{"num_classes": 2, "label_names": ["a", "b"]}') == ModelMetadata(2, ["a", "b"])
    partial = ModelMetadata.from_dict({"num_classes": 2, "label_names": ["a", "b"],
                                       "preprocessing": {"input_size": [97, 97]}})
    assert partial.preprocessing == Preprocessing(input_size=(97, 97))


def test_rule_tables_cover_exactly_the_dataclass_fields():
    assert {name for name, _, _ in MODEL_RULES} == {f.name for f in fields(ModelMetadata)}
    assert {name for name, _, _ in PREPROCESSING_RULES} == {f.name for f in fields(Preprocessing)}


@pytest.mark.parametrize("count", [MIN_CLASSES - 1, MAX_CLASSES + 1])
def test_constructor_refuses_class_counts_label_maps_cannot_hold(count):
    with pytest.raises(DmlcsrError, match=r"ModelMetadata: num_classes must be an integer in 2\.\.256") as exc:
        ModelMetadata(count, [f"c{i}" for i in range(count)])
    one_line(exc)
    ModelMetadata(MAX_CLASSES, [f"c{i}" for i in range(MAX_CLASSES)])  # the limit itself is fine


def test_exporter_metadata_refuses_300_classes():
    pytest.importorskip("onnx")
    from export.onnx_export import deploy_metadata

    with pytest.raises(DmlcsrError, match="found 300") as exc:
        deploy_metadata(300)
    one_line(exc)


# ---- property: arbitrary JSON values never escape as anything but a one-line DmlcsrError ---------

FIELD_NAMES = [f.name for f in fields(ModelMetadata)] + [f.name for f in fields(Preprocessing)]
KEYS = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(KEYS, inner, max_size=6), max_leaves=25)


def assert_metadata_or_one_line_error(data) -> None:
    try:
        meta = ModelMetadata.from_dict(data)
    except DmlcsrError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, message
    else:
        assert isinstance(meta, ModelMetadata)
        assert ModelMetadata.from_json(meta.to_json()).to_json() == meta.to_json()  # as text: NaN != NaN


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES | st.dictionaries(KEYS, JSON_VALUES, max_size=8))
def test_arbitrary_json_values_are_metadata_or_one_line_error(data):
    assert_metadata_or_one_line_error(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FIELD_NAMES), JSON_VALUES)
def test_one_field_of_a_valid_document_replaced_by_anything(name, value):
    data = json.loads(ModelMetadata(19, NAMES).to_json())
    (data["preprocessing"] if name in data["preprocessing"] else data)[name] = value
    assert_metadata_or_one_line_error(data)


# ---- checkpoints: the class count is read off the classifier and refused out of range ------------

@pytest.mark.parametrize("count, phrase", [(300, "has 300 classes, outside the 2..256 dmlcsr supports"),
                                           (0, "has 0 classes, outside the 2..256"),
                                           (1, "has 1 classes, outside the 2..256")])
def test_checkpoint_class_counts_outside_uint8_label_maps_are_refused(tmp_path, count, phrase):
    state = {CLASSIFIER_KEY: torch.zeros(count, 4, 1, 1), "block1.weight": torch.zeros(1)}
    path = tmp_path / f"c{count}.pth"
    torch.save(state, path)
    for load in (load_dml_csr, load_eagrnet):
        with pytest.raises(DmlcsrError, match=re.escape(phrase)) as exc:
            load(path)
        message = one_line(exc)
        assert "uint8" in message and ("retrain" in message) == (count > MAX_CLASSES), message
    assert infer_num_classes({CLASSIFIER_KEY: torch.zeros(MAX_CLASSES, 4, 1, 1)}) == MAX_CLASSES
