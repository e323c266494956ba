"""What an exported artefact needs to be used correctly, stored beside or inside it.

The same JSON document goes into the ONNX file's metadata_props (key ``dmlcsr``) and into
the engine's JSON sidecar, so Python and C++ clients read one schema and never guess
the preprocessing, the label names or the I/O tensor names.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from dmlcsr import __version__
from dmlcsr.core import geometry
from dmlcsr.errors import DmlcsrError

METADATA_KEY = "dmlcsr"
SCHEMA_VERSION = 1


@dataclass
class Preprocessing:
    """Exactly what to do to an image before the network (see dmlcsr.core.geometry)."""

    input_size: tuple[int, int] = geometry.INPUT_SIZE
    channel_order: str = geometry.CHANNEL_ORDER
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = geometry.MEAN
    std: tuple[float, float, float] = geometry.STD
    layout: str = "NCHW"
    crop: str = "official center/scale affine, bilinear, black border"


@dataclass
class ModelMetadata:
    """Everything a runtime needs to run and interpret one artefact."""

    num_classes: int
    label_names: list[str]
    input_name: str = "input"
    output_name: str = "logits"
    output_stride: int = 4
    precision: str = "fp32"
    checkpoint_sha256: str = ""
    toolkit_version: str = __version__
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        try:
            pre = data.get("preprocessing", {})
            pre = Preprocessing(**{**pre, "input_size": tuple(pre.get("input_size", geometry.INPUT_SIZE)),
                                   "mean": tuple(pre.get("mean", geometry.MEAN)),
                                   "std": tuple(pre.get("std", geometry.STD))})
            fields = {k: v for k, v in data.items() if k != "preprocessing"}
            meta = cls(**fields, preprocessing=pre)
        except TypeError as exc:
            raise DmlcsrError(f"artefact metadata does not match this toolkit ({exc}); re-export the "
                              "model with this dmlcsr version") from None
        if meta.schema_version > SCHEMA_VERSION:
            raise DmlcsrError(f"artefact metadata schema {meta.schema_version} is newer than this "
                              f"toolkit understands ({SCHEMA_VERSION}); upgrade dmlcsr")
        if len(meta.label_names) != meta.num_classes:
            raise DmlcsrError(f"artefact metadata lists {len(meta.label_names)} label names for "
                              f"{meta.num_classes} classes; re-export the model")
        return meta

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DmlcsrError(f"artefact metadata is not valid JSON ({exc}); re-export the model") from None
        return cls.from_dict(data)
