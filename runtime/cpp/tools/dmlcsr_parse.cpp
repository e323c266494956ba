// dmlcsr_parse MODEL IMAGE OUT.png [--box x,y,w,h] [--threads N] [--bench N]
//
// Parses one image with dmlcsr::Parser and writes its label map (pixel = class index) as a
// PNG, through a temporary name in OUT's folder and a rename, so OUT is never half-written.
// Every failure is one line on stderr and exit status 1 (2 for a wrong command line).
// --bench N then parses the image N more times and prints the median stage times as JSON.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>

#include "dmlcsr/parser.hpp"

namespace fs = std::filesystem;

namespace {

constexpr const char* kUsage =
    "usage: dmlcsr_parse MODEL IMAGE OUT.png [--box x,y,w,h] [--threads N] [--bench N]";

struct Arguments {
    std::string model, image, out;
    std::optional<dmlcsr::Box> box;
    int threads = 0;
    int bench = 0;
};

[[noreturn]] void usage(const std::string& problem) {
    std::cerr << "dmlcsr_parse: " << problem << "\n" << kUsage << "\n";
    std::exit(2);
}

int whole_number(const std::string& text, const std::string& option) {
    std::size_t used = 0;
    int value = -1;
    try {
        value = std::stoi(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != text.size() || value < 0) usage(option + " takes a whole number, not '" + text + "'");
    return value;
}

dmlcsr::Box parse_box(const std::string& text) {
    std::vector<double> values;
    std::stringstream stream(text);
    std::string item;
    while (std::getline(stream, item, ',')) {
        std::size_t used = 0;
        try {
            values.push_back(std::stod(item, &used));
        } catch (const std::exception&) {
            used = std::string::npos;
        }
        if (used != item.size()) usage("--box takes x,y,w,h in pixels, not '" + text + "'");
    }
    if (values.size() != 4) usage("--box takes four numbers x,y,w,h in pixels, not '" + text + "'");
    return {values[0], values[1], values[2], values[3]};
}

Arguments parse_arguments(int argc, char** argv) {
    Arguments args;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "-h" || arg == "--help") {
            std::cout << kUsage << "\n";
            std::exit(0);
        } else if (arg == "--box" || arg == "--threads" || arg == "--bench") {
            if (!has_value) usage(arg + " needs a value");
            const std::string value = argv[++i];
            if (arg == "--box") args.box = parse_box(value);
            if (arg == "--threads") args.threads = whole_number(value, arg);
            if (arg == "--bench") args.bench = whole_number(value, arg);
        } else if (arg.size() > 1 && arg[0] == '-') {
            usage("unknown option " + arg);
        } else {
            positional.push_back(arg);
        }
    }
    if (positional.size() != 3) usage("expected MODEL IMAGE OUT.png");
    args.model = positional[0];
    args.image = positional[1];
    args.out = positional[2];
    return args;
}

bool same_file(const fs::path& a, const fs::path& b) {
    std::error_code error;
    return fs::exists(a, error) && fs::exists(b, error) && fs::equivalent(a, b, error);
}

/// OUT through a temporary name in its own folder, then a rename (atomic within one file system).
void write_labels(const cv::Mat& labels, const fs::path& out) {
    std::random_device random;
    fs::path temporary = out;
    temporary.replace_filename(".dmlcsr-" + std::to_string(random()) + ".png");
    bool written = false;
    try {
        written = cv::imwrite(temporary.string(), labels);
    } catch (const cv::Exception&) {
        written = false;
    }
    std::error_code error;
    if (written) fs::rename(temporary, out, error);
    if (!written || error) {
        fs::remove(temporary, error);
        throw dmlcsr::Error("cannot write " + out.string() + "; pass a writable OUT.png");
    }
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

void print_bench(const Arguments& args, const dmlcsr::Parser& parser, const cv::Mat& image, double load_ms) {
    std::vector<double> pre, infer, post, total;
    for (int i = 0; i < args.bench; ++i) {
        dmlcsr::Timing timing;
        const auto start = std::chrono::steady_clock::now();
        parser.parse(image, args.box, &timing);
        total.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
        pre.push_back(timing.pre_ms);
        infer.push_back(timing.infer_ms);
        post.push_back(timing.post_ms);
    }
    const nlohmann::json report = {
        {"model", fs::path(args.model).filename().string()}, {"image", fs::path(args.image).filename().string()},
        {"backend", parser.backend_name()}, {"runs", args.bench}, {"load_ms", load_ms}, {"pre_ms", median(pre)},
        {"infer_ms", median(infer)}, {"post_ms", median(post)}, {"total_ms", median(total)}};
    std::cout << report.dump() << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);  // our one line, not OpenCV's
    const Arguments args = parse_arguments(argc, argv);
    try {
        const fs::path out(args.out);
        std::string suffix = out.extension().string();
        std::transform(suffix.begin(), suffix.end(), suffix.begin(), [](unsigned char c) { return std::tolower(c); });
        if (suffix != ".png") {
            throw dmlcsr::Error("OUT " + args.out + " must end in .png: label maps are written losslessly");
        }
        if (same_file(out, args.image) || same_file(out, args.model)) {
            throw dmlcsr::Error("OUT " + args.out + " is an input; pass another OUT.png");
        }
        std::error_code error;
        if (!fs::is_regular_file(args.image, error)) {
            throw dmlcsr::Error("image " + args.image + " does not exist or is not a file");
        }
        const cv::Mat image = cv::imread(args.image, cv::IMREAD_COLOR);
        if (image.empty()) {
            throw dmlcsr::Error("cannot read image " + args.image + ": empty, corrupt or not a format OpenCV decodes");
        }
        const auto start = std::chrono::steady_clock::now();
        const dmlcsr::Parser parser(args.model, dmlcsr::Options{args.threads});
        const double load_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        write_labels(parser.parse(image, args.box), out);
        if (args.bench > 0) print_bench(args, parser, image, load_ms);
    } catch (const dmlcsr::Error& exc) {
        std::cerr << "dmlcsr_parse: error: " << exc.what() << "\n";
        return 1;
    } catch (const std::exception& exc) {  // a library's own exception: still one line
        std::string text = exc.what();
        std::cerr << "dmlcsr_parse: error: " << text.substr(0, text.find('\n')) << "\n";
        return 1;
    }
    return 0;
}
