"""What an exported artefact needs to be used correctly, stored beside or inside it.

The same JSON document goes into the ONNX file's metadata_props (key ``dmlcsr``), the
OpenVINO IR's rt_info and the TensorRT engine's JSON sidecar, so Python and C++ clients
read one schema and never guess the preprocessing, the label names or the I/O tensor
names. Every reader goes through ``ModelMetadata.from_json``/``from_dict``, and both run
one schema check (``validate_document``) so a damaged or foreign document is a one-line
DmlcsrError naming the field, never a traceback deep in the runtime.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from dmlcsr import __version__
from dmlcsr.core import geometry
from dmlcsr.core.labels import MAX_CLASSES, MIN_CLASSES
from dmlcsr.errors import DmlcsrError

METADATA_KEY = "dmlcsr"
SCHEMA_VERSION = 1
MAX_METADATA_CHARS = 1_000_000  # real documents are a few KB; refuse bigger text before parsing it
MIN_INPUT_SIDE, MAX_INPUT_SIDE = 2, 8192
REEXPORT = "re-export the model with dmlcsr-export"


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
    """Everything a runtime needs to run and interpret one artefact.

    Construction runs the same schema check as reading, so an exporter cannot write a
    document that every reader would then refuse (e.g. 300 classes for uint8 label maps).
    """

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

    def __post_init__(self) -> None:
        where, fix = "ModelMetadata", "fix the value passed to ModelMetadata"
        if not isinstance(self.preprocessing, Preprocessing):
            _fail(where, "preprocessing", "a Preprocessing", _found(self.preprocessing), fix)
        # shallow views, not asdict(): a deeply nested ``extra`` must not cost a deep copy
        document = {f.name: getattr(self, f.name) for f in fields(self)}
        validate_document({**document, "preprocessing": vars(self.preprocessing)}, where, fix)

    def to_json(self) -> str:
        """Strict JSON (RFC 8259): C++ readers (nlohmann-json in runtime/cpp) refuse NaN and
        Infinity, which Python writes by default. Only ``extra`` can hold them (every other
        number is checked finite); there they become the strings "NaN", "Infinity", "-Infinity"."""
        return json.dumps(_strict(asdict(self)), indent=2, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Any) -> ModelMetadata:
        """The metadata in a parsed JSON document; DmlcsrError if it breaks the schema."""
        validate_document(data)
        pre = dict(data.get("preprocessing", {}))
        pre.update({key: tuple(pre[key]) for key in ("input_size", "mean", "std") if key in pre})
        return cls(**{**data, "preprocessing": Preprocessing(**pre)})

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelMetadata:
        """The metadata in JSON text as stored in an artefact; DmlcsrError for anything unreadable."""
        if not isinstance(text, (str, bytes, bytearray)):
            raise DmlcsrError(f"artefact metadata must be JSON text, found {_found(text)}; {REEXPORT}")
        if len(text) > MAX_METADATA_CHARS:
            raise DmlcsrError(f"artefact metadata is {len(text):,} characters, over the {MAX_METADATA_CHARS:,} "
                              f"this toolkit reads (real metadata is a few KB); {REEXPORT}")
        try:
            data = json.loads(text)
        except RecursionError:
            raise DmlcsrError(f"artefact metadata is JSON nested too deeply to read; {REEXPORT}") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, ints past Python's digit limit
            reason = " ".join(str(exc).split())[:160]
            raise DmlcsrError(f"artefact metadata is not valid JSON ({reason}); {REEXPORT}") from None
        return cls.from_dict(data)


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its JSON5 spelling as a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


# ---- the schema: one table per object, (field, check, what it must be) -------------------------

Check = Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not 1 class


def _int_in(low: int, high: float = math.inf) -> Check:
    return lambda value: _is_int(value) and low <= value <= high


def _is_number(value: Any) -> bool:
    """Finite int or float; bools refused. Python's json reads NaN and Infinity, so check."""
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _positive_number(value: Any) -> bool:
    return _is_number(value) and value > 0


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _label_name(value: Any) -> bool:
    """A class name a legend can draw and a JSON file can hold: short, valid Unicode."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_LABEL_NAME:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: OpenCV's putText crashes on it
        return False
    return True


def _is_object(value: Any) -> bool:
    return isinstance(value, Mapping)


def _seq_of(length: int | None, item: Check) -> Check:
    def check(value: Any) -> bool:
        return (isinstance(value, (list, tuple)) and (length is None or len(value) == length)
                and all(item(v) for v in value))
    return check


#: class names beyond this length are not names (and would widen legends without bound)
MAX_LABEL_NAME = 64

Rules = tuple[tuple[str, Check, str], ...]

MODEL_RULES: Rules = (
    ("schema_version", _int_in(1), "a positive integer"),
    ("num_classes", _int_in(MIN_CLASSES, MAX_CLASSES),
     f"an integer in {MIN_CLASSES}..{MAX_CLASSES} (label maps are uint8 PNGs)"),
    ("label_names", _seq_of(None, _label_name), f"a list of names, one per class, each 1..{MAX_LABEL_NAME} "
                                                 "characters of valid Unicode"),
    ("input_name", _non_empty_str, "a non-empty string"),
    ("output_name", _non_empty_str, "a non-empty string"),
    ("output_stride", _int_in(1), "a positive integer"),
    ("precision", _is_str, "a string"),
    ("checkpoint_sha256", _is_str, "a string"),
    ("toolkit_version", _is_str, "a string"),
    ("preprocessing", _is_object, "an object"),
    ("extra", _is_object, "an object"),
)
PREPROCESSING_RULES: Rules = (
    ("input_size", _seq_of(2, _int_in(MIN_INPUT_SIDE, MAX_INPUT_SIDE)),
     f"two integers in {MIN_INPUT_SIDE}..{MAX_INPUT_SIDE} (height, width)"),
    ("channel_order", _is_str, "a string"),
    ("scale", _positive_number, "a finite number above 0"),
    ("mean", _seq_of(3, _is_number), "three finite numbers"),
    ("std", _seq_of(3, _positive_number), "three finite numbers above 0"),
    ("layout", _is_str, "a string"),
    ("crop", _is_str, "a string"),
)
REQUIRED = ("num_classes", "label_names")

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 40
_short.maxlist = _short.maxtuple = _short.maxdict = 4


def _found(value: Any) -> str:
    """A short one-line description of a value in JSON words: '300 (integer)', 'a list [...]'."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    kinds = ((int, "integer"), (float, "number"), (str, "string"), ((list, tuple), "list"), (Mapping, "object"))
    kind = next((name for types, name in kinds if isinstance(value, types)), type(value).__name__)
    text = _brief(value)
    return f"a {kind} {text}" if kind in ("list", "object") else f"{text} ({kind})"


def _brief(value: Any) -> str:
    """repr() cut to a few dozen characters; escapes newlines, so messages stay one line."""
    try:
        return _short.repr(value)
    except ValueError:  # an int past Python's str() digit limit
        return "..."


def _fail(where: str, name: str, expected: str, found: str, fix: str) -> None:
    raise DmlcsrError(f"{where}: {name} must be {expected}, found {found}; {fix}")


def _check_object(data: Mapping, rules: Rules, prefix: str, where: str, fix: str) -> None:
    """Unknown keys first (keeps the 'does not match this toolkit' answer), then each field."""
    known = {name for name, _, _ in rules}
    unknown = [key for key in data if key not in known]
    if unknown:
        names = ", ".join(prefix + _brief(key) for key in unknown[:3])
        raise DmlcsrError(f"{where} does not match this toolkit (unknown field{'s' * (len(unknown) > 1)} "
                          f"{names}); re-export the model with this dmlcsr version")
    for name, check, expected in rules:
        if name in data and not check(data[name]):
            _fail(where, prefix + name, expected, _found(data[name]), fix)


def validate_document(data: Any, where: str = "artefact metadata", fix: str = REEXPORT) -> None:
    """Raise a one-line DmlcsrError naming the field, what was found and the fix if ``data``
    is not a metadata document this toolkit can use; absent optional fields are fine."""
    if not isinstance(data, Mapping):
        raise DmlcsrError(f"{where} must be a JSON object, found {_found(data)}; {fix}")
    version = data.get("schema_version", SCHEMA_VERSION)
    if _is_int(version) and version > SCHEMA_VERSION:  # newer writer: a newer reader, not a re-export
        raise DmlcsrError(f"{where} schema {version} is newer than this toolkit understands "
                          f"({SCHEMA_VERSION}); upgrade dmlcsr")
    missing = [name for name in REQUIRED if name not in data]
    if missing:
        raise DmlcsrError(f"{where} does not match this toolkit (missing {', '.join(missing)}); re-export "
                          "the model with this dmlcsr version")
    _check_object(data, MODEL_RULES, "", where, fix)
    _check_object(data.get("preprocessing", {}), PREPROCESSING_RULES, "preprocessing.", where, fix)
    names, count = data["label_names"], data["num_classes"]
    if len(names) != count:
        _fail(where, "label_names", f"exactly {count} strings, one per class", f"a list of {len(names)}", fix)
