"""Real photos: find every face (CenterFace), parse each, composite one label map.

    from dmlcsr.runtime import FaceParser
    from dmlcsr.runtime.faces import parse_photo
    result = parse_photo(FaceParser("dmlcsr.onnx"), "group.jpg")   # faces="auto"
    result.labels                      # H x W uint8, the photo's size, 0 outside every face
    [f.face.box for f in result.faces] # x, y, w, h per face; f.region: the pixels its crop covers
"""

from dmlcsr.runtime.faces.box_file import FaceBoxes, read_boxes, write_boxes
from dmlcsr.runtime.faces.detector import CenterFace, Face
from dmlcsr.runtime.faces.framing import DEFAULT_MARGIN, NO_MARGIN, Margin
from dmlcsr.runtime.faces.photo import FaceResult, PhotoResult, parse_photo

__all__ = ["CenterFace", "DEFAULT_MARGIN", "Face", "FaceBoxes", "FaceResult", "Margin", "NO_MARGIN", "PhotoResult",
           "parse_photo", "read_boxes", "write_boxes"]
