// dmlcsr::Parser: metadata, the official geometry and the pipeline around a backend.
//
// Every step mirrors dmlcsr/core/geometry.py, including where numpy computes in float32
// and where in float64, so that the same image gives the same label map: a difference in
// the last bit of a crop center moves the warp, and a fused multiply-add in the upsample
// can flip a near-tie in the argmax (the build turns contraction off for that reason).
#include "dmlcsr/parser.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "backend.hpp"

namespace dmlcsr {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kSchemaVersion = 1;
constexpr std::size_t kMaxMetadataChars = 1000000;  // as dmlcsr.core.metadata: real documents are a few KB
constexpr int kMinClasses = 2, kMaxClasses = 256;   // label maps are uint8 PNGs
constexpr int kMinInputSide = 2, kMaxInputSide = 8192;
constexpr double kMean[3] = {0.485, 0.456, 0.406};  // ImageNet's RGB values, applied to B, G, R as officially
constexpr double kStd[3] = {0.229, 0.224, 0.225};
constexpr const char* kCrop = "official center/scale affine, bilinear, black border";
constexpr const char* kReexport = "re-export the model with dmlcsr-export";
constexpr double kMaxCoordinate = 16777216.0;  // 2^24, as dmlcsr.core.validation
constexpr double kMinBoxSide = 2.0;
constexpr double kMaxBoxToImage = 16.0;

std::string quoted(const json& value) {
    std::string text = value.dump();
    return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

std::string number(double value) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%g", value);
    return buffer;
}

/// Checks one metadata document field by field, each failure one line naming the field.
class DocumentReader {
public:
    explicit DocumentReader(std::string where) : where_(std::move(where)) {}

    [[noreturn]] void fail(const std::string& field, const std::string& expected, const json& found) const {
        throw Error(where_ + ": " + field + " must be " + expected + ", found " + quoted(found) + "; " + kReexport);
    }

    void refuse_unknown(const json& object, const std::set<std::string>& known, const std::string& prefix) const {
        for (const auto& item : object.items()) {
            if (!known.count(item.key())) {
                throw Error(where_ + " does not match this runtime (unknown field " + prefix + item.key() +
                            "); re-export the model with the dmlcsr version this runtime was built with");
            }
        }
    }

    int integer(const json& object, const std::string& key, const std::string& field, int low, int high,
                int fallback) const {
        if (!object.contains(key)) return fallback;
        const json& value = object[key];
        if (!value.is_number_integer() || value.get<int64_t>() < low || value.get<int64_t>() > high) {
            fail(field, "an integer in " + std::to_string(low) + ".." + std::to_string(high), value);
        }
        return value.get<int>();
    }

    std::string text(const json& object, const std::string& key, const std::string& field,
                     const std::string& fallback, bool non_empty = false) const {
        if (!object.contains(key)) return fallback;
        const json& value = object[key];
        if (!value.is_string() || (non_empty && value.get<std::string>().empty())) {
            fail(field, non_empty ? "a non-empty string" : "a string", value);
        }
        return value.get<std::string>();
    }

    /// A preprocessing choice this runtime implements exactly one way.
    void exactly(const json& object, const std::string& key, const std::string& wanted,
                 const std::string& meaning) const {
        if (!object.contains(key)) return;
        const json& value = object[key];
        if (!value.is_string() || value.get<std::string>() != wanted) {
            throw Error(where_ + ": preprocessing." + key + " is " + quoted(value) + " but this runtime implements \"" +
                        wanted + "\" (" + meaning + ") only; " + kReexport);
        }
    }

    void numbers(const json& object, const std::string& key, const double (&wanted)[3]) const {
        if (!object.contains(key)) return;
        const json& value = object[key];
        bool same = value.is_array() && value.size() == 3;
        for (std::size_t i = 0; same && i < 3; ++i) same = value[i].is_number() && value[i].get<double>() == wanted[i];
        if (!same) {
            throw Error(where_ + ": preprocessing." + key + " is " + quoted(value) + " but this runtime implements " +
                        "ImageNet's " + quoted(json(std::vector<double>(wanted, wanted + 3))) +
                        " on the BGR channels (the official pipeline) only; " + kReexport);
        }
    }

private:
    std::string where_;
};

}  // namespace

Metadata parse_metadata(const std::string& json_text, const std::string& where) {
    if (json_text.size() > kMaxMetadataChars) {
        throw Error(where + " is " + std::to_string(json_text.size()) + " characters, over the " +
                    std::to_string(kMaxMetadataChars) + " this runtime reads; " + kReexport);
    }
    json doc;
    try {
        doc = json::parse(json_text);
    } catch (const json::exception& exc) {
        throw Error(where + " is not valid JSON (" + one_line(exc.what(), 160) + "); " + kReexport);
    }
    const DocumentReader reader(where);
    if (!doc.is_object()) throw Error(where + " must be a JSON object, found " + quoted(doc) + "; " + kReexport);
    if (doc.contains("schema_version") && doc["schema_version"].is_number_integer() &&
        doc["schema_version"].get<int64_t>() > kSchemaVersion) {
        throw Error(where + " schema " + doc["schema_version"].dump() + " is newer than this runtime understands (" +
                    std::to_string(kSchemaVersion) + "); rebuild it against a newer dmlcsr");
    }
    for (const char* key : {"num_classes", "label_names"}) {
        if (!doc.contains(key)) {
            throw Error(where + " does not match this runtime (missing " + std::string(key) + "); " + kReexport);
        }
    }
    reader.refuse_unknown(doc, {"schema_version", "num_classes", "label_names", "input_name", "output_name",
                                "output_stride", "precision", "checkpoint_sha256", "toolkit_version",
                                "preprocessing", "extra"}, "");
    Metadata meta;
    reader.integer(doc, "schema_version", "schema_version", 1, kSchemaVersion, kSchemaVersion);
    meta.num_classes = reader.integer(doc, "num_classes", "num_classes", kMinClasses, kMaxClasses, 0);
    const json& names = doc["label_names"];
    if (!names.is_array() || names.size() != static_cast<std::size_t>(meta.num_classes)) {
        reader.fail("label_names", "a list of exactly " + std::to_string(meta.num_classes) + " names", names);
    }
    for (const json& name : names) {
        if (!name.is_string() || name.get<std::string>().empty()) reader.fail("label_names", "non-empty strings", name);
        meta.label_names.push_back(name.get<std::string>());
    }
    meta.input_name = reader.text(doc, "input_name", "input_name", meta.input_name, true);
    meta.output_name = reader.text(doc, "output_name", "output_name", meta.output_name, true);
    meta.precision = reader.text(doc, "precision", "precision", meta.precision);
    if (doc.contains("preprocessing")) {
        const json& pre = doc["preprocessing"];
        if (!pre.is_object()) reader.fail("preprocessing", "an object", pre);
        reader.refuse_unknown(pre, {"input_size", "channel_order", "scale", "mean", "std", "layout", "crop"},
                              "preprocessing.");
        if (pre.contains("input_size")) {
            const json& size = pre["input_size"];
            bool valid = size.is_array() && size.size() == 2;
            for (std::size_t i = 0; valid && i < 2; ++i) {
                valid = size[i].is_number_integer() && size[i].get<int64_t>() >= kMinInputSide &&
                        size[i].get<int64_t>() <= kMaxInputSide;
            }
            if (!valid) {
                reader.fail("preprocessing.input_size", "two integers in " + std::to_string(kMinInputSide) + ".." +
                            std::to_string(kMaxInputSide) + " (height, width)", size);
            }
            meta.input_height = size[0].get<int>();
            meta.input_width = size[1].get<int>();
        }
        reader.exactly(pre, "channel_order", "BGR", "OpenCV's order, as the official code feeds the network");
        reader.exactly(pre, "layout", "NCHW", "planar input");
        reader.exactly(pre, "crop", kCrop, "the official test crop");
        if (pre.contains("scale")) {  // the Python runtime's test: numpy.isclose(scale, 1/255)
            const json& scale = pre["scale"];
            if (!scale.is_number() || std::fabs(scale.get<double>() - 1.0 / 255.0) > 1e-8 + 1e-5 / 255.0) {
                throw Error(where + ": preprocessing.scale is " + quoted(scale) +
                            " but this runtime implements 1/255 only; " + kReexport);
            }
        }
        reader.numbers(pre, "mean", kMean);
        reader.numbers(pre, "std", kStd);
    }
    if (doc.contains("extra") && !doc["extra"].is_object()) reader.fail("extra", "an object", doc["extra"]);
    return meta;
}

// ---- the official geometry (dmlcsr/core/geometry.py) ---------------------------------------

Crop box_to_crop(const Box& box, int input_height, int input_width) {
    double w = box.w, h = box.h;
    const double aspect = static_cast<double>(input_width) / input_height;
    Crop crop;
    crop.center_x = static_cast<float>(box.x + w * 0.5);
    crop.center_y = static_cast<float>(box.y + h * 0.5);
    if (w > aspect * h) {
        h = w / aspect;
    } else if (w < aspect * h) {
        w = h * aspect;
    }
    crop.scale_w = static_cast<float>(w);
    crop.scale_h = static_cast<float>(h);
    return crop;
}

Crop whole_image_crop(int height, int width, int input_height, int input_width) {
    return box_to_crop(Box{0.0, 0.0, static_cast<double>(width - 1), static_cast<double>(height - 1)}, input_height,
                       input_width);
}

namespace {
/// The third point of get_affine_transform: b + (a - b) turned by 90 degrees, in float32.
cv::Point2f third_point(const cv::Point2f& a, const cv::Point2f& b) {
    const float dx = a.x - b.x, dy = a.y - b.y;
    return {b.x - dy, b.y + dx};
}
}  // namespace

cv::Mat affine_matrix(const Crop& crop, int input_height, int input_width, bool inverse) {
    // rotation 0: src_dir = (-half * sin, half * cos) = (0, half), added in float64, stored float32
    const double half = static_cast<double>(crop.scale_w) * -0.5;
    cv::Point2f src[3], dst[3];
    src[0] = {crop.center_x, crop.center_y};
    src[1] = {static_cast<float>(static_cast<double>(crop.center_x) + 0.0),
              static_cast<float>(static_cast<double>(crop.center_y) + half)};
    dst[0] = {static_cast<float>(input_width * 0.5), static_cast<float>(input_height * 0.5)};
    dst[1] = {dst[0].x + 0.0f, dst[0].y + static_cast<float>(input_width * -0.5)};
    src[2] = third_point(src[0], src[1]);
    dst[2] = third_point(dst[0], dst[1]);
    return inverse ? cv::getAffineTransform(dst, src) : cv::getAffineTransform(src, dst);
}

cv::Mat warp_to_input(const cv::Mat& bgr, const Crop& crop, int input_height, int input_width) {
    // OpenCV >= 4.11 (the Python runtime's cv2.warpAffine, INTER_LINEAR, black border) maps each
    // output pixel through the inverse affine in float32 and blends with fused multiply-adds;
    // Debian's OpenCV 4.6 uses 5-bit fixed-point weights instead, which moved 0.1-0.35 % of the
    // demo model's labels. Written out here, the input does not depend on the system's OpenCV.
    cv::Mat inverse;
    cv::invertAffineTransform(affine_matrix(crop, input_height, input_width), inverse);
    float m[6];
    for (int i = 0; i < 6; ++i) m[i] = static_cast<float>(inverse.at<double>(i / 3, i % 3));
    cv::Mat out(input_height, input_width, CV_8UC3);
    const int rows = bgr.rows, cols = bgr.cols;
    for (int y = 0; y < input_height; ++y) {
        const float row_x = static_cast<float>(y) * m[1] + m[2], row_y = static_cast<float>(y) * m[4] + m[5];
        uint8_t* dst = out.ptr<uint8_t>(y);
        for (int x = 0; x < input_width; ++x, dst += 3) {
            const float sx = std::fma(m[0], static_cast<float>(x), row_x);
            const float sy = std::fma(m[3], static_cast<float>(x), row_y);
            const int ix = static_cast<int>(std::floor(sx)), iy = static_cast<int>(std::floor(sy));
            const float ax = sx - static_cast<float>(ix), ay = sy - static_cast<float>(iy);
            const uint8_t* corner[4] = {nullptr, nullptr, nullptr, nullptr};  // (0,0) (0,1) (1,0) (1,1); null: black
            for (int k = 0; k < 4; ++k) {
                const int px = ix + (k & 1), py = iy + (k >> 1);
                if (px >= 0 && px < cols && py >= 0 && py < rows) corner[k] = bgr.ptr<uint8_t>(py) + 3 * px;
            }
            for (int c = 0; c < 3; ++c) {
                float p[4];
                for (int k = 0; k < 4; ++k) p[k] = corner[k] ? static_cast<float>(corner[k][c]) : 0.0f;
                const float top = std::fma(ax, p[1] - p[0], p[0]);
                const float bottom = std::fma(ax, p[3] - p[2], p[2]);
                const float value = std::nearbyint(std::fma(ay, bottom - top, top));  // half to even
                dst[c] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, value)));
            }
        }
    }
    return out;
}

cv::Mat warp_labels_back(const cv::Mat& labels, const Crop& crop, int height, int width) {
    // as cv2.warpAffine(..., INTER_NEAREST, black border) in OpenCV >= 4.11: the source index is
    // the float32 mapped coordinate rounded half to even (4.6 rounds in 10-bit fixed point and
    // picked the other neighbour on ties such as x = 9.5 on t1.jpg)
    const int input_height = labels.rows, input_width = labels.cols;
    cv::Mat forward;  // image -> input: the inverse of the matrix the Python runtime passes
    cv::invertAffineTransform(affine_matrix(crop, input_height, input_width, true), forward);
    float m[6];
    for (int i = 0; i < 6; ++i) m[i] = static_cast<float>(forward.at<double>(i / 3, i % 3));
    cv::Mat out(height, width, CV_8U);
    for (int y = 0; y < height; ++y) {
        const float row_x = static_cast<float>(y) * m[1] + m[2], row_y = static_cast<float>(y) * m[4] + m[5];
        uint8_t* dst = out.ptr<uint8_t>(y);
        for (int x = 0; x < width; ++x) {
            const int sx = static_cast<int>(std::nearbyint(std::fma(m[0], static_cast<float>(x), row_x)));
            const int sy = static_cast<int>(std::nearbyint(std::fma(m[3], static_cast<float>(x), row_y)));
            const bool inside = sx >= 0 && sx < input_width && sy >= 0 && sy < input_height;
            dst[x] = inside ? labels.at<uint8_t>(sy, sx) : 0;
        }
    }
    return out;
}

namespace {
/// Bilinear align_corners=True along one axis, as torch computes it: position =
/// index * float32((src - 1) / (dst - 1)) in float32; each output blends two inputs.
struct Taps {
    std::vector<int> low, high;
    std::vector<float> w_low, w_high;
};

Taps make_taps(int src, int dst) {
    Taps taps;
    const float ratio = dst > 1 ? static_cast<float>(static_cast<double>(src - 1) / (dst - 1)) : 0.0f;
    for (int i = 0; i < dst; ++i) {
        const float pos = static_cast<float>(i) * ratio;
        const int low = std::min(static_cast<int>(std::floor(pos)), src - 1);
        const float frac = pos - static_cast<float>(low);
        taps.low.push_back(low);
        taps.high.push_back(std::min(low + 1, src - 1));
        taps.w_low.push_back(1.0f - frac);
        taps.w_high.push_back(frac);
    }
    return taps;
}

/// One h x w plane -> H x W: the width first, then the height (torch's CPU kernel order).
void interpolate(const float* plane, int height, int width, const Taps& rows, const Taps& cols,
                 std::vector<float>& wide, float* out) {
    const int out_w = static_cast<int>(cols.low.size()), out_h = static_cast<int>(rows.low.size());
    wide.resize(static_cast<std::size_t>(height) * out_w);
    for (int y = 0; y < height; ++y) {
        const float* in = plane + static_cast<std::size_t>(y) * width;
        float* row = wide.data() + static_cast<std::size_t>(y) * out_w;
        for (int x = 0; x < out_w; ++x) {
            const float a = in[cols.low[x]] * cols.w_low[x];
            const float b = in[cols.high[x]] * cols.w_high[x];
            row[x] = a + b;
        }
    }
    for (int y = 0; y < out_h; ++y) {
        const float* top = wide.data() + static_cast<std::size_t>(rows.low[y]) * out_w;
        const float* bottom = wide.data() + static_cast<std::size_t>(rows.high[y]) * out_w;
        const float w_top = rows.w_low[y], w_bottom = rows.w_high[y];
        float* row = out + static_cast<std::size_t>(y) * out_w;
        for (int x = 0; x < out_w; ++x) {
            const float a = top[x] * w_top;
            const float b = bottom[x] * w_bottom;
            row[x] = a + b;
        }
    }
}
}  // namespace

cv::Mat labels_from_logits(const float* logits, int channels, int height, int width, int input_height,
                           int input_width) {
    const Taps rows = make_taps(height, input_height), cols = make_taps(width, input_width);
    const std::size_t pixels = static_cast<std::size_t>(input_height) * input_width;
    const std::size_t plane_size = static_cast<std::size_t>(height) * width;
    cv::Mat labels(input_height, input_width, CV_8U, cv::Scalar(0));
    std::vector<float> best(pixels), plane(pixels), wide;
    interpolate(logits, height, width, rows, cols, wide, best.data());
    uint8_t* out = labels.ptr<uint8_t>();
    for (int channel = 1; channel < channels; ++channel) {  // running maximum: the first maximum wins ties
        interpolate(logits + channel * plane_size, height, width, rows, cols, wide, plane.data());
        for (std::size_t i = 0; i < pixels; ++i) {
            if (plane[i] > best[i]) {
                best[i] = plane[i];
                out[i] = static_cast<uint8_t>(channel);
            }
        }
    }
    return labels;
}

// ---- the parser --------------------------------------------------------------------------

std::string one_line(const std::string& text, std::size_t limit) {
    // OpenVINO's messages run "Exception from src/...cpp:123:\nCheck '...' failed at ...:\nthe reason";
    // keep the first line that is not a source location or an assertion's text.
    std::istringstream lines(text);
    std::string line, chosen;
    while (std::getline(lines, line)) {
        line.erase(0, line.find_first_not_of(" \t\r"));
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (line.empty() || line.rfind("Exception from", 0) == 0 || line.rfind("Check '", 0) == 0) continue;
        chosen = line;
        break;
    }
    if (chosen.empty()) {
        chosen = text.substr(0, text.find('\n'));
    }
    return chosen.size() > limit ? chosen.substr(0, limit - 3) + "..." : chosen;
}

namespace {

std::string lower_suffix(const fs::path& path) {
    std::string suffix = path.extension().string();
    std::transform(suffix.begin(), suffix.end(), suffix.begin(), [](unsigned char c) { return std::tolower(c); });
    return suffix;
}

/// The JSON beside an engine, as the Python runtime looks for it: MODEL.engine.json, else MODEL.json.
fs::path engine_sidecar(const fs::path& engine) {
    fs::path beside = engine;
    beside += ".json";
    if (fs::exists(beside)) return beside;
    fs::path by_stem = engine;
    by_stem.replace_extension(".json");
    return fs::exists(by_stem) ? by_stem : beside;
}

std::string read_text(const fs::path& path) {
    std::ifstream file(path, std::ios::binary);
    std::ostringstream text;
    if (!file || !(text << file.rdbuf())) throw Error("cannot read " + path.string() + "; re-export the model");
    return text.str();
}

const TensorInfo* find(const std::vector<TensorInfo>& tensors, const std::string& name) {
    for (const TensorInfo& tensor : tensors) {
        if (tensor.name == name) return &tensor;
    }
    return nullptr;
}

std::string names(const std::vector<TensorInfo>& tensors) {
    std::string text;
    for (const TensorInfo& tensor : tensors) text += (text.empty() ? "" : ", ") + tensor.name;
    return "[" + text + "]";
}

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string text;
    for (int64_t d : shape) text += (text.empty() ? "" : " x ") + (d < 0 ? std::string("?") : std::to_string(d));
    return text;
}

/// The face box check of dmlcsr.core.validation.face_box, with its messages.
void check_box(const Box& box, int height, int width) {
    const std::string shown = "face box (" + number(box.x) + ", " + number(box.y) + ", " + number(box.w) + ", " +
                              number(box.h) + ")";
    for (double v : {box.x, box.y, box.w, box.h}) {
        if (!std::isfinite(v)) throw Error(shown + " has a NaN or infinite value; pass finite x, y, w, h");
    }
    if (std::max({std::fabs(box.x), std::fabs(box.y), box.w, box.h}) > kMaxCoordinate) {
        throw Error(shown + " has a value beyond 16777216 pixels; pass x, y, w, h in the image's pixels");
    }
    if (box.w <= 0 || box.h <= 0) {
        throw Error(shown + " is empty (w and h must be > 0); pass x, y, w, h, not x1, y1, x2, y2");
    }
    if (std::min(box.w, box.h) < kMinBoxSide) {
        throw Error(shown + " is below the 2-pixel minimum; pass x, y, w, h in pixels, not fractions of the image");
    }
    const std::string image = std::to_string(width) + "x" + std::to_string(height);
    if (std::min(box.x + box.w, static_cast<double>(width)) - std::max(box.x, 0.0) < 1 ||
        std::min(box.y + box.h, static_cast<double>(height)) - std::max(box.y, 0.0) < 1) {
        throw Error(shown + " lies outside the " + image + " image; pass x, y, w, h in this image's pixels");
    }
    if (std::max(box.w, box.h) > kMaxBoxToImage * std::max(width, height)) {
        throw Error(shown + " is over 16 times the " + image + " image; pass x, y, w, h in this image's pixels");
    }
}

/// 8-bit BGR as cv::imread(IMREAD_COLOR) would give it: gray and BGRA converted, others refused.
cv::Mat as_bgr(const cv::Mat& image) {
    if (image.empty()) throw Error("the image is empty; pass an 8-bit BGR image (as cv::imread returns)");
    if (image.depth() != CV_8U) {
        throw Error("the image is not 8-bit (OpenCV depth " + std::to_string(image.depth()) +
                    "); convert it to 8-bit BGR first");
    }
    if (image.rows < 2 || image.cols < 2) throw Error("the image is under 2 pixels a side; pass a real photo");
    cv::Mat bgr;
    switch (image.channels()) {
        case 3: return image;
        case 1: cv::cvtColor(image, bgr, cv::COLOR_GRAY2BGR); return bgr;
        case 4: cv::cvtColor(image, bgr, cv::COLOR_BGRA2BGR); return bgr;
        default: throw Error("the image has " + std::to_string(image.channels()) + " channels; pass 8-bit BGR");
    }
}

double elapsed_ms(std::chrono::steady_clock::time_point since) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

Parser::Parser(const std::string& model_path, const Options& options) : path_(model_path) {
    const fs::path path(model_path);
    const std::string name = path.filename().string();
    std::error_code error;
    if (!fs::is_regular_file(path, error)) {
        throw Error("model " + model_path + " does not exist or is not a file; pass an exported .onnx, .xml or "
                    ".engine");
    }
    const std::string suffix = lower_suffix(path);
    if (suffix == ".engine" || suffix == ".plan") {
        // an engine holds no metadata: its sidecar is read (and checked) before TensorRT is touched
        const fs::path side = engine_sidecar(path);
        if (!fs::is_regular_file(side)) {
            throw Error(name + " has no JSON sidecar (" + side.filename().string() + "): TensorRT engines need the "
                        "one dmlcsr-export writes beside them; copy it along or re-export the engine");
        }
        const std::string text = read_text(side);
        metadata_ = parse_metadata(text, "engine sidecar " + side.filename().string());
        backend_ = open_tensorrt(model_path, text);
    } else if (suffix == ".onnx" || suffix == ".xml") {
        backend_ = open_openvino(model_path, options);
        const std::optional<std::string> text = backend_->embedded_metadata();
        if (!text) {
            throw Error(name + " carries no dmlcsr metadata, so its labels and preprocessing are unknown; export "
                        "the checkpoint with dmlcsr-export");
        }
        metadata_ = parse_metadata(*text, name + " metadata");
    } else {
        throw Error("model " + name + " is not an .onnx, OpenVINO .xml or TensorRT .engine/.plan file; pass one "
                    "dmlcsr-export wrote");
    }
    // the model's own I/O must be what its metadata says (the Python runtime's _check_model)
    const std::vector<TensorInfo> inputs = backend_->inputs(), outputs = backend_->outputs();
    const TensorInfo* input = find(inputs, metadata_.input_name);
    const TensorInfo* output = find(outputs, metadata_.output_name);
    if (!input || !output) {
        throw Error(name + " has inputs " + names(inputs) + " and outputs " + names(outputs) + " but its metadata "
                    "names " + metadata_.input_name + " -> " + metadata_.output_name + "; re-export the model");
    }
    const std::vector<int64_t> want = {-1, 3, metadata_.input_height, metadata_.input_width};
    bool input_ok = input->shape.size() == 4;
    for (std::size_t i = 1; input_ok && i < 4; ++i) input_ok = input->shape[i] < 0 || input->shape[i] == want[i];
    if (!input_ok) {
        throw Error(name + " takes input " + shape_text(input->shape) + " but its metadata says N x 3 x " +
                    std::to_string(metadata_.input_height) + " x " + std::to_string(metadata_.input_width) +
                    "; re-export the model");
    }
    if (output->shape.size() != 4 || (output->shape[1] >= 0 && output->shape[1] != metadata_.num_classes)) {
        throw Error(name + " returns " + shape_text(output->shape) + ", not N x " +
                    std::to_string(metadata_.num_classes) + " x h x w logits as its metadata says; re-export the "
                    "model");
    }
}

Parser::~Parser() = default;

std::string Parser::backend_name() const { return backend_->name(); }

cv::Mat Parser::parse(const cv::Mat& image, const std::optional<Box>& face_box, Timing* timing) const {
    const auto start = std::chrono::steady_clock::now();
    const cv::Mat bgr = as_bgr(image);
    const int in_h = metadata_.input_height, in_w = metadata_.input_width;
    Crop crop;
    if (face_box) {
        check_box(*face_box, bgr.rows, bgr.cols);
        crop = box_to_crop(*face_box, in_h, in_w);
    } else {
        crop = whole_image_crop(bgr.rows, bgr.cols, in_h, in_w);
    }
    const cv::Mat warped = warp_to_input(bgr, crop, in_h, in_w);
    // (pixel - mean * 255) * (1 / (std * 255)) in float32, channel by channel, into N x C x H x W
    std::vector<float> input(static_cast<std::size_t>(3) * in_h * in_w);
    const std::size_t plane = static_cast<std::size_t>(in_h) * in_w;
    float mean[3], inv_std[3];
    for (int c = 0; c < 3; ++c) {
        mean[c] = static_cast<float>(kMean[c]) * 255.0f;
        inv_std[c] = 1.0f / (static_cast<float>(kStd[c]) * 255.0f);
    }
    for (int y = 0; y < in_h; ++y) {
        const uint8_t* row = warped.ptr<uint8_t>(y);
        for (int x = 0; x < in_w; ++x) {
            for (int c = 0; c < 3; ++c) {
                input[c * plane + static_cast<std::size_t>(y) * in_w + x] =
                    (static_cast<float>(row[3 * x + c]) - mean[c]) * inv_std[c];
            }
        }
    }
    const auto inferred = std::chrono::steady_clock::now();
    std::vector<int64_t> shape;
    const std::vector<float> logits =
        backend_->infer(metadata_.input_name, input.data(), {1, 3, in_h, in_w}, metadata_.output_name, shape);
    const auto post = std::chrono::steady_clock::now();
    const std::string name = fs::path(path_).filename().string();
    if (shape.size() != 4 || shape[0] != 1 || shape[1] != metadata_.num_classes) {
        throw Error(name + " returned logits of shape " + shape_text(shape) + " for one image; expected 1 x " +
                    std::to_string(metadata_.num_classes) + " x h x w: re-export the model");
    }
    for (float v : logits) {
        if (!std::isfinite(v)) {
            throw Error(name + " produced NaN or infinite logits (an FP16/INT8 overflow or broken weights); "
                        "re-export it, or use the FP32 model");
        }
    }
    const cv::Mat labels = labels_from_logits(logits.data(), static_cast<int>(shape[1]), static_cast<int>(shape[2]),
                                              static_cast<int>(shape[3]), in_h, in_w);
    // inverse affine, nearest, 0 outside: the exact float center the forward warp used
    const cv::Mat result = warp_labels_back(labels, crop, bgr.rows, bgr.cols);
    if (timing) {
        timing->pre_ms = std::chrono::duration<double, std::milli>(inferred - start).count();
        timing->infer_ms = std::chrono::duration<double, std::milli>(post - inferred).count();
        timing->post_ms = elapsed_ms(post);
    }
    return result;
}

}  // namespace dmlcsr
