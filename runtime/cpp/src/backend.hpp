// The engines behind dmlcsr::Parser: one small interface, one source file per engine.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dmlcsr/parser.hpp"

namespace dmlcsr {

/// A tensor's name and shape as the model declares it (-1: dynamic dimension).
struct TensorInfo {
    std::string name;
    std::vector<int64_t> shape;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    /// The metadata document stored inside the model file, if the engine keeps one.
    virtual std::optional<std::string> embedded_metadata() const = 0;
    virtual std::vector<TensorInfo> inputs() const = 0;
    virtual std::vector<TensorInfo> outputs() const = 0;
    /// Run one 1 x 3 x H x W float32 input; returns the output tensor ``output`` as float32
    /// and sets ``shape`` to its shape.
    virtual std::vector<float> infer(const std::string& input, const float* data, const std::vector<int64_t>& in_shape,
                                     const std::string& output, std::vector<int64_t>& shape) = 0;
};

std::unique_ptr<Backend> open_openvino(const std::string& path, const Options& options);
/// ``sidecar_text``: the engine's JSON sidecar, whose build record is checked first. Without
/// TensorRT at build time, a stub that says this build has none.
std::unique_ptr<Backend> open_tensorrt(const std::string& path, const std::string& sidecar_text);

/// A library's exception message reduced to one informative line (OpenVINO's are multi-line,
/// starting with the source file that threw).
std::string one_line(const std::string& text, std::size_t limit = 240);

}  // namespace dmlcsr
