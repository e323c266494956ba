// dmlcsr C++ runtime: the official DML-CSR test pipeline around an exported model.
//
//   dmlcsr::Parser parser("demo-fp32.onnx");           // .onnx or OpenVINO .xml; .engine with TensorRT
//   cv::Mat labels = parser.parse(bgr_image);          // H x W CV_8U, the image's own size
//   cv::Mat face = parser.parse(bgr_image, dmlcsr::Box{x, y, w, h});
//
// What to do to the pixels is read from the model's dmlcsr metadata (the same JSON document
// the Python runtime reads: ONNX metadata_props, OpenVINO rt_info, a TensorRT engine's
// sidecar), never guessed; a model without it, or asking for preprocessing this library
// does not implement, is refused with a one-line dmlcsr::Error. The pixels follow
// dmlcsr/core/geometry.py operation by operation (float32 where numpy uses float32), so
// the label maps equal the Python runtime's up to OpenCV's own warp rounding.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace dmlcsr {

/// Every failure this library reports: one line saying what is wrong and what to do.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// The fields of the metadata document this runtime needs (schema 1, dmlcsr/core/metadata.py).
struct Metadata {
    int num_classes = 0;
    std::vector<std::string> label_names;
    std::string input_name = "input";
    std::string output_name = "logits";
    std::string precision = "fp32";
    int input_height = 473;
    int input_width = 473;
};

/// Read and check a metadata document (JSON text). ``where`` names it in messages.
Metadata parse_metadata(const std::string& json_text, const std::string& where);

/// A face box in image pixels (x, y, w, h), as any detector gives it.
struct Box {
    double x = 0, y = 0, w = 0, h = 0;
};

/// Milliseconds spent in each stage of one parse() call.
struct Timing {
    double pre_ms = 0;    // crop, warp, normalise
    double infer_ms = 0;  // the backend
    double post_ms = 0;   // upsample, argmax, inverse warp
};

/// Where the network's input came from: center and scale in image pixels (float32, as numpy).
struct Crop {
    float center_x = 0, center_y = 0;
    float scale_w = 0, scale_h = 0;
};

// The official geometry, exposed for callers that place faces themselves.
Crop whole_image_crop(int height, int width, int input_height, int input_width);
Crop box_to_crop(const Box& box, int input_height, int input_width);
/// 2x3 CV_64F image -> input affine (input -> image with ``inverse``), as get_affine_transform.
cv::Mat affine_matrix(const Crop& crop, int input_height, int input_width, bool inverse = false);
/// The network's view of an 8-bit BGR image: bilinear affine warp, black border, as the
/// Python runtime's cv2.warpAffine (OpenCV >= 4.11 arithmetic, whatever OpenCV this links).
cv::Mat warp_to_input(const cv::Mat& bgr, const Crop& crop, int input_height, int input_width);
/// Input-size CV_8U labels -> the height x width image: inverse affine, nearest, 0 outside
/// the crop (cv2.warpAffine INTER_NEAREST as OpenCV >= 4.11 rounds).
cv::Mat warp_labels_back(const cv::Mat& labels, const Crop& crop, int height, int width);
/// C x h x w float32 logits -> input_height x input_width CV_8U labels: bilinear upsample with
/// align_corners=True (width first, then height, as torch), argmax with the first maximum winning.
cv::Mat labels_from_logits(const float* logits, int channels, int height, int width, int input_height,
                           int input_width);

class Backend;

struct Options {
    int threads = 0;  // CPU threads for OpenVINO; 0: the engine's default
};

class Parser {
public:
    explicit Parser(const std::string& model_path, const Options& options = Options());
    ~Parser();
    Parser(const Parser&) = delete;
    Parser& operator=(const Parser&) = delete;

    /// H x W CV_8U class indices at the image's size (0 outside the crop). ``bgr`` is 8-bit,
    /// 3 channels (as cv::imread returns); no box parses the whole image as one face.
    cv::Mat parse(const cv::Mat& bgr, const std::optional<Box>& face_box = std::nullopt,
                  Timing* timing = nullptr) const;

    const Metadata& metadata() const { return metadata_; }
    /// Which engine runs the model, e.g. "openvino[CPU, fp32, f32 compute]".
    std::string backend_name() const;

private:
    std::string path_;
    std::unique_ptr<Backend> backend_;
    Metadata metadata_;
};

}  // namespace dmlcsr
