// TensorRT backend: a serialized engine run with the TensorRT 10 C++ API (named I/O tensors,
// setInputShape, setTensorAddress, enqueueV3) on a private CUDA stream, as the Python
// runtime's TensorRT backend. Compiled only when CMake finds TensorRT (DMLCSR_WITH_TENSORRT);
// otherwise open_tensorrt says this build has none.
//
// An engine runs only under the TensorRT release and on the GPU architecture it was built
// for, so the sidecar's build record (extra.tensorrt: version, compute_capability) is
// checked before the engine is deserialised, as the Python runtime does.
#include "backend.hpp"

#ifdef DMLCSR_WITH_TENSORRT

#include <cuda_runtime_api.h>

#include <NvInfer.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>

#include <nlohmann/json.hpp>

namespace dmlcsr {
namespace {

namespace fs = std::filesystem;
constexpr const char* kRebuild = "rebuild the engine on this GPU with dmlcsr-export (or run the .onnx model instead)";

void check_cuda(cudaError_t status, const char* what) {
    if (status != cudaSuccess) throw Error(std::string("CUDA ") + what + " failed (" + cudaGetErrorString(status) + ")");
}

class Logger : public nvinfer1::ILogger {
public:
    void log(Severity severity, const char* message) noexcept override {
        if (severity <= Severity::kERROR) last_error = message;
    }
    std::string last_error;
};

/// The sidecar's build record against this TensorRT and this GPU.
void check_build_record(const std::string& sidecar_text, const std::string& name) {
    const nlohmann::json doc = nlohmann::json::parse(sidecar_text);  // already parsed once: cannot throw here
    const nlohmann::json record = doc.value("extra", nlohmann::json::object()).value("tensorrt", nlohmann::json());
    if (!record.is_object() || !record.contains("version") || !record["version"].is_string()) {
        throw Error("engine sidecar of " + name + " lacks the TensorRT build record (extra.tensorrt with version); "
                    "re-export the engine");
    }
    const std::string built = record["version"].get<std::string>();
    const std::string here = std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) + ".";
    if (built.rfind(here, 0) != 0) {
        throw Error(name + " was built with TensorRT " + built + " and this program uses " + here + "x; " + kRebuild);
    }
    int device = 0;
    cudaDeviceProp properties{};
    check_cuda(cudaGetDevice(&device), "device query");
    check_cuda(cudaGetDeviceProperties(&properties, device), "device query");
    const std::string capability = std::to_string(properties.major) + "." + std::to_string(properties.minor);
    if (record.contains("compute_capability") && record["compute_capability"].is_string() &&
        record["compute_capability"].get<std::string>() != capability) {
        throw Error(name + " was built for compute capability " + record["compute_capability"].get<std::string>() +
                    " and this GPU has " + capability + "; " + kRebuild);
    }
}

class TensorRtBackend : public Backend {
public:
    TensorRtBackend(const std::string& path, const std::string& sidecar_text) {
        const std::string name = fs::path(path).filename().string();
        check_build_record(sidecar_text, name);
        std::ifstream file(path, std::ios::binary);
        const std::vector<char> blob((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
        if (!file.good() && !file.eof()) throw Error("cannot read " + path + "; re-export the engine");
        runtime_.reset(nvinfer1::createInferRuntime(logger_));
        if (runtime_) engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
        if (!engine_) {
            throw Error("TensorRT could not deserialise " + name + " (" + logger_.last_error + "); " + kRebuild);
        }
        context_.reset(engine_->createExecutionContext());
        if (!context_) throw Error("TensorRT could not create an execution context for " + name);
        for (int i = 0; i < engine_->getNbIOTensors(); ++i) {
            const char* tensor = engine_->getIOTensorName(i);
            const nvinfer1::Dims dims = engine_->getTensorShape(tensor);
            TensorInfo info{tensor, std::vector<int64_t>(dims.d, dims.d + dims.nbDims)};
            if (engine_->getTensorDataType(tensor) != nvinfer1::DataType::kFLOAT) {
                throw Error(name + ": tensor " + info.name + " is not float32; re-export the engine from the "
                            "dmlcsr-export ONNX");
            }
            (engine_->getTensorIOMode(tensor) == nvinfer1::TensorIOMode::kINPUT ? inputs_ : outputs_).push_back(info);
        }
        check_cuda(cudaStreamCreate(&stream_), "stream creation");
    }

    ~TensorRtBackend() override {
        for (void* buffer : {input_buffer_, output_buffer_}) {
            if (buffer) cudaFree(buffer);
        }
        if (stream_) cudaStreamDestroy(stream_);
    }

    std::string name() const override { return "tensorrt[CUDA]"; }
    std::optional<std::string> embedded_metadata() const override { return std::nullopt; }
    std::vector<TensorInfo> inputs() const override { return inputs_; }
    std::vector<TensorInfo> outputs() const override { return outputs_; }

    std::vector<float> infer(const std::string& input, const float* data, const std::vector<int64_t>& in_shape,
                             const std::string& output, std::vector<int64_t>& shape) override {
        const std::lock_guard<std::mutex> lock(mutex_);  // an execution context is not thread-safe
        nvinfer1::Dims dims{};
        dims.nbDims = static_cast<int32_t>(in_shape.size());
        std::size_t in_count = 1;
        for (std::size_t i = 0; i < in_shape.size(); ++i) {
            dims.d[i] = in_shape[i];
            in_count *= static_cast<std::size_t>(in_shape[i]);
        }
        if (!context_->setInputShape(input.c_str(), dims)) {
            throw Error("TensorRT refused input shape for " + input + " (" + logger_.last_error + ")");
        }
        const nvinfer1::Dims out_dims = context_->getTensorShape(output.c_str());
        std::size_t out_count = 1;
        shape.clear();
        for (int i = 0; i < out_dims.nbDims; ++i) {
            shape.push_back(out_dims.d[i]);
            out_count *= static_cast<std::size_t>(out_dims.d[i]);
        }
        reserve(input_buffer_, input_bytes_, in_count * sizeof(float));
        reserve(output_buffer_, output_bytes_, out_count * sizeof(float));
        std::vector<float> logits(out_count);
        check_cuda(cudaMemcpyAsync(input_buffer_, data, in_count * sizeof(float), cudaMemcpyHostToDevice, stream_),
                   "copy to the GPU");
        if (!context_->setTensorAddress(input.c_str(), input_buffer_) ||
            !context_->setTensorAddress(output.c_str(), output_buffer_) || !context_->enqueueV3(stream_)) {
            throw Error("TensorRT failed to run the engine (" + logger_.last_error + ")");
        }
        check_cuda(cudaMemcpyAsync(logits.data(), output_buffer_, out_count * sizeof(float), cudaMemcpyDeviceToHost,
                                   stream_), "copy from the GPU");
        check_cuda(cudaStreamSynchronize(stream_), "stream synchronisation");
        return logits;
    }

private:
    static void reserve(void*& buffer, std::size_t& capacity, std::size_t bytes) {
        if (bytes <= capacity) return;
        if (buffer) cudaFree(buffer);
        buffer = nullptr;
        capacity = 0;
        check_cuda(cudaMalloc(&buffer, bytes), "allocation");
        capacity = bytes;
    }

    Logger logger_;
    std::unique_ptr<nvinfer1::IRuntime> runtime_;
    std::unique_ptr<nvinfer1::ICudaEngine> engine_;
    std::unique_ptr<nvinfer1::IExecutionContext> context_;
    cudaStream_t stream_ = nullptr;
    void* input_buffer_ = nullptr;
    void* output_buffer_ = nullptr;
    std::size_t input_bytes_ = 0, output_bytes_ = 0;
    std::vector<TensorInfo> inputs_, outputs_;
    std::mutex mutex_;
};

}  // namespace

std::unique_ptr<Backend> open_tensorrt(const std::string& path, const std::string& sidecar_text) {
    return std::make_unique<TensorRtBackend>(path, sidecar_text);
}

}  // namespace dmlcsr

#else  // built without TensorRT

namespace dmlcsr {

std::unique_ptr<Backend> open_tensorrt(const std::string& path, const std::string&) {
    throw Error(path + " is a TensorRT engine, but this dmlcsr build has no TensorRT (CMake did not find it); "
                "rebuild with TensorRT installed (-DTensorRT_ROOT=...) or run the .onnx model");
}

}  // namespace dmlcsr

#endif
