// OpenVINO backend: .onnx files and IR (.xml + .bin) on the CPU, as the Python runtime's
// OpenVinoBackend. FP32 is asked for explicitly: without INFERENCE_PRECISION_HINT the CPU
// plugin computes in bf16 on CPUs with AMX, which would silently change the labels.
#include <filesystem>
#include <mutex>

#include <openvino/frontend/manager.hpp>
#include <openvino/openvino.hpp>

#include "backend.hpp"

namespace dmlcsr {
namespace {

namespace fs = std::filesystem;
constexpr const char* kMetadataKey = "dmlcsr";

TensorInfo describe(const ov::Output<const ov::Node>& port) {
    TensorInfo info;
    info.name = port.get_any_name();
    for (const ov::Dimension& dim : port.get_partial_shape()) {
        info.shape.push_back(dim.is_static() ? dim.get_length() : -1);
    }
    return info;
}

/// An .onnx through OpenVINO's ONNX reader only: read_model would also offer a damaged file to
/// every other reader (TensorFlow's logs its parse errors to stderr).
std::shared_ptr<ov::Model> read_onnx(const std::string& path) {
    ov::frontend::FrontEndManager manager;
    const ov::frontend::FrontEnd::Ptr onnx = manager.load_by_framework("onnx");
    const ov::frontend::InputModel::Ptr input = onnx->load(path);
    if (!input) throw Error("the ONNX reader could not parse it");
    return onnx->convert(input);
}

class OpenVinoBackend : public Backend {
public:
    OpenVinoBackend(const std::string& path, const Options& options) {
        const fs::path file(path);
        const std::string name = file.filename().string();
        const bool ir = file.extension() == ".xml";
        if (ir) {
            fs::path weights = file;
            weights.replace_extension(".bin");
            if (!fs::is_regular_file(weights)) {
                throw Error("OpenVINO IR " + name + " has no weights file " + weights.filename().string() +
                            " beside it; copy the .bin along or re-export with dmlcsr-export --openvino");
            }
        }
        std::shared_ptr<ov::Model> model;
        try {
            model = ir ? core_.read_model(path) : read_onnx(path);
        } catch (const std::exception& exc) {
            throw Error(path + " is not a loadable " + std::string(ir ? "OpenVINO IR" : "ONNX model") + " (" +
                        one_line(exc.what()) + "); re-export it with dmlcsr-export");
        }
        // IR: rt_info "dmlcsr"; ONNX: OpenVINO's reader keeps metadata_props under "framework"
        try {
            if (model->has_rt_info(kMetadataKey)) {
                metadata_ = model->get_rt_info<std::string>(kMetadataKey);
            } else if (model->has_rt_info("framework", kMetadataKey)) {
                metadata_ = model->get_rt_info<std::string>("framework", kMetadataKey);
            }
        } catch (const std::exception& exc) {
            throw Error(name + " has dmlcsr metadata OpenVINO cannot read as text (" + one_line(exc.what()) +
                        "); re-export it with dmlcsr-export");
        }
        for (const auto& port : model->inputs()) inputs_.push_back(describe(port));
        for (const auto& port : model->outputs()) outputs_.push_back(describe(port));
        ov::AnyMap config{ov::hint::inference_precision(ov::element::f32),
                          ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
        if (options.threads > 0) config.emplace(ov::inference_num_threads(options.threads));
        try {
            compiled_ = core_.compile_model(model, "CPU", config);
            request_ = compiled_.create_infer_request();
        } catch (const std::exception& exc) {
            throw Error("OpenVINO could not compile " + name + " for the CPU (" + one_line(exc.what()) +
                        "); re-export it with dmlcsr-export --openvino");
        }
        name_ = std::string("openvino[CPU, ") + (ir ? "IR" : "ONNX") + ", f32 compute]";
    }

    std::string name() const override { return name_; }
    std::optional<std::string> embedded_metadata() const override { return metadata_; }
    std::vector<TensorInfo> inputs() const override { return inputs_; }
    std::vector<TensorInfo> outputs() const override { return outputs_; }

    std::vector<float> infer(const std::string& input, const float* data, const std::vector<int64_t>& in_shape,
                             const std::string& output, std::vector<int64_t>& shape) override {
        const std::lock_guard<std::mutex> lock(mutex_);  // one infer request: one call at a time
        try {
            const ov::Shape dims(in_shape.begin(), in_shape.end());
            // the tensor wraps the caller's buffer: OpenVINO reads it during infer() only
            request_.set_tensor(input, ov::Tensor(ov::element::f32, dims, const_cast<float*>(data)));
            request_.infer();
            const ov::Tensor result = request_.get_tensor(output);
            if (result.get_element_type() != ov::element::f32) {
                throw Error("the model's logits are " + result.get_element_type().get_type_name() +
                            ", not f32; re-export the model with dmlcsr-export");
            }
            const ov::Shape dims_out = result.get_shape();
            shape.assign(dims_out.begin(), dims_out.end());
            const float* values = result.data<const float>();
            return std::vector<float>(values, values + result.get_size());
        } catch (const Error&) {
            throw;
        } catch (const std::exception& exc) {
            throw Error("OpenVINO failed to run the model (" + one_line(exc.what()) + "); check the input shape "
                        "against the model's input");
        }
    }

private:
    ov::Core core_;
    ov::CompiledModel compiled_;
    ov::InferRequest request_;
    std::mutex mutex_;
    std::optional<std::string> metadata_;
    std::vector<TensorInfo> inputs_, outputs_;
    std::string name_;
};

}  // namespace

std::unique_ptr<Backend> open_openvino(const std::string& path, const Options& options) {
    return std::make_unique<OpenVinoBackend>(path, options);
}

}  // namespace dmlcsr
