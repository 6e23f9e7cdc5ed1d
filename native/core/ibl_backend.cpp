#include "ibl_backend.h"
#include "ibl_error.h"
#include "ibl_threads.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#ifdef _WIN32
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#else
#include <dlfcn.h>
#endif

#ifndef IBL_CPU_SINGLE_NAME
#define IBL_CPU_SINGLE_NAME "default"
#endif

namespace fs = std::filesystem;

namespace {

#ifdef _WIN32
const char * const k_prefix = "";
const char * const k_ext    = ".dll";
#else
const char * const k_prefix = "lib";
const char * const k_ext    = ".so";  // also on macOS: CMake names MODULE libraries .so there
#endif

// The directory libggml (the registry) was loaded from: the build and the packages put the backend
// modules beside it.
std::string registry_dir() {
#ifdef _WIN32
    HMODULE mod = nullptr;
    if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                            (LPCWSTR) (void *) &ggml_backend_load, &mod)) return "";
    std::wstring buf(32768, L'\0');
    const DWORD n = GetModuleFileNameW(mod, buf.data(), (DWORD) buf.size());
    if (n == 0) return "";
    buf.resize(n);
    return fs::path(buf).parent_path().u8string();
#else
    Dl_info info;
    if (!dladdr((void *) &ggml_backend_load, &info) || !info.dli_fname) return "";
    std::error_code ec;
    const fs::path p = fs::canonical(info.dli_fname, ec);
    return (ec ? fs::path(info.dli_fname) : p).parent_path().string();
#endif
}

// A CPU variant module's own view of this machine: ggml_backend_score() is 0 when the CPU lacks an
// instruction set the variant was compiled for, higher for more capable variants.
int module_score(const fs::path & file) {
    typedef int (*score_fn)();
#ifdef _WIN32
    HMODULE h = LoadLibraryW(file.wstring().c_str());
    if (!h) return -1;
    auto fn = (score_fn) GetProcAddress(h, "ggml_backend_score");
    const int s = fn ? fn() : -1;
    FreeLibrary(h);
#else
    void * h = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) return -1;
    auto fn = (score_fn) dlsym(h, "ggml_backend_score");
    const int s = fn ? fn() : -1;
    dlclose(h);
#endif
    return s;
}

bool starts_with(const std::string & s, const std::string & p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string & s, const std::string & e) { return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0; }

struct module_files {
    std::vector<fs::path> gpu;            // libggml-<name>.so other than cpu / base
    std::vector<fs::path> cpu_variants;   // libggml-cpu-<variant>.so
    fs::path              cpu_single;     // libggml-cpu.so
};

module_files list_modules(const std::string & dir) {
    module_files m;
    const std::string base = std::string(k_prefix) + "ggml-";
    std::error_code ec;
    for (fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().u8string();
        if (!starts_with(name, base) || !ends_with(name, k_ext)) continue;
        const std::string stem = name.substr(base.size(), name.size() - base.size() - std::string(k_ext).size());
        if (stem == "base") continue;
        if (stem == "cpu") m.cpu_single = it->path();
        else if (starts_with(stem, "cpu-")) m.cpu_variants.push_back(it->path());
        else m.gpu.push_back(it->path());
    }
    std::sort(m.gpu.begin(), m.gpu.end());
    std::sort(m.cpu_variants.begin(), m.cpu_variants.end());
    return m;
}

std::string variant_of(const fs::path & file) {
    const std::string name = file.filename().u8string();
    const size_t skip = std::string(k_prefix).size() + std::string("ggml-cpu-").size();
    return name.substr(skip, name.size() - skip - std::string(k_ext).size());
}

// The CPU module to load: the one named by IMAGEBIND_LLM_CPU_VARIANT, else the best-scoring variant
// (as ggml_backend_load_best does), else the single module of a source build.
fs::path choose_cpu_module(const module_files & m, const std::string & dir, std::string & variant) {
    std::string names;
    for (const auto & f : m.cpu_variants) names += (names.empty() ? "" : ", ") + variant_of(f);
    if (const char * want = std::getenv("IMAGEBIND_LLM_CPU_VARIANT"); want && *want) {
        for (const auto & f : m.cpu_variants) {
            if (variant_of(f) != want) continue;
            if (module_score(f) <= 0) {
                ibl_throw("ERR_NO_BACKEND", "IMAGEBIND_LLM_CPU_VARIANT=%s: this CPU lacks instructions that %s needs", want, f.u8string().c_str());
            }
            variant = want;
            return f;
        }
        ibl_throw("ERR_NO_BACKEND", "IMAGEBIND_LLM_CPU_VARIANT=%s: no such CPU module in %s (there are: %s)", want, dir.c_str(),
                  names.empty() ? "only the single CPU module of a source build" : names.c_str());
    }
    int best = 0;
    fs::path best_file;
    for (const auto & f : m.cpu_variants) {
        const int s = module_score(f);
        if (s > best) { best = s; best_file = f; }
    }
    if (!best_file.empty()) {
        variant = variant_of(best_file);
        return best_file;
    }
    if (!m.cpu_single.empty()) {
        variant = IBL_CPU_SINGLE_NAME;
        return m.cpu_single;
    }
    ibl_throw("ERR_NO_BACKEND", "no CPU backend module for this CPU in %s%s%s", dir.c_str(),
              names.empty() ? "" : " (variants there: ", names.empty() ? "" : (names + ")").c_str());
}

std::mutex               g_mutex;
bool                     g_loaded = false;
ibl_backend_load_info    g_info;
std::vector<std::string> g_extra_dirs;

}  // namespace

bool ibl_backends_add_dir(const std::string & dir) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_loaded) return false;
    g_extra_dirs.push_back(dir);
    return true;
}

void ibl_backends_init() {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_loaded) return;
    ibl_log_init();
    ibl_backend_load_info info;
    info.dir = registry_dir();
    if (info.dir.empty()) ibl_throw("ERR_NO_BACKEND", "cannot tell where libggml was loaded from, so its backend modules cannot be found");
    module_files m = list_modules(info.dir);
    const fs::path cpu = choose_cpu_module(m, info.dir, info.cpu_variant);
    for (const auto & dir : g_extra_dirs) {
        const module_files extra = list_modules(dir);
        m.gpu.insert(m.gpu.end(), extra.gpu.begin(), extra.gpu.end());
    }
    // GPU backends first, then the CPU, as ggml_backend_load_all does: device order follows.
    for (const auto & f : m.gpu) {
        // A GPU module whose runtime is missing (no Vulkan loader, no CUDA driver) does not load: that
        // machine simply has no such device.
        if (ggml_backend_load(f.u8string().c_str())) info.modules.push_back(f.filename().u8string());
    }
    ibl_log_clear_last_error();
    if (!ggml_backend_load(cpu.u8string().c_str())) {
        const std::string why = ibl_log_last_error();
        ibl_throw("ERR_NO_BACKEND", "cannot load the CPU backend %s%s%s", cpu.u8string().c_str(), why.empty() ? "" : ": ", why.c_str());
    }
    info.cpu_module = cpu.filename().u8string();
    info.modules.push_back(info.cpu_module);
    if (const char * extra = std::getenv("GGML_BACKEND_PATH"); extra && *extra) {
        if (ggml_backend_load(extra)) info.modules.push_back(extra);
    }
    g_info = std::move(info);
    g_loaded = true;
}

const ibl_backend_load_info & ibl_backends_loaded() {
    ibl_backends_init();
    return g_info;
}

std::string ibl_device_names() {
    ibl_backends_init();
    std::string names;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        names += std::string(names.empty() ? "" : ", ") + ggml_backend_dev_name(ggml_backend_dev_get(i));
    }
    return names;
}

std::string ibl_gpu_device_names() {
    ibl_backends_init();
    std::string names;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        const auto type = ggml_backend_dev_type(d);
        if (type != GGML_BACKEND_DEVICE_TYPE_GPU && type != GGML_BACKEND_DEVICE_TYPE_IGPU) continue;
        names += std::string(names.empty() ? "" : ", ") + ggml_backend_dev_name(d);
    }
    return names;
}

bool ibl_device_is_cpu(ggml_backend_dev_t dev) {
    return ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU;
}

static std::string lower(std::string s) {
    for (auto & c : s) c = (char) std::tolower((unsigned char) c);
    return s;
}

ggml_backend_dev_t ibl_device_pick(const std::string & want_in, const std::string & what) {
    ibl_backends_init();
    const std::string want = lower(want_in);
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!cpu) ibl_throw("ERR_NO_BACKEND", "no CPU backend is loaded");
    if (want.empty() || want == "cpu") return cpu;
    if (want == "auto" || want == "gpu") {
        ggml_backend_dev_t d = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_GPU);
        if (!d) d = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_IGPU);
        if (!d && want == "gpu") ibl_throw("ERR_NO_DEVICE", "%s: no GPU device here (devices: %s; see `imagebind-llm info`)", what.c_str(), ibl_device_names().c_str());
        return d ? d : cpu;
    }
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        if (lower(ggml_backend_dev_name(d)) == want) return d;
    }
    ibl_throw("ERR_NO_DEVICE", "%s: unknown device '%s' (devices: %s, or auto, gpu, cpu)", what.c_str(), want_in.c_str(), ibl_device_names().c_str());
}

ggml_backend_t ibl_cpu_backend_init(int n_threads) {
    ggml_backend_t b = ggml_backend_dev_init(ibl_device_pick("cpu", "CPU backend"), nullptr);
    if (!b) ibl_throw("ERR_NO_DEVICE", "cannot initialise the CPU backend");
    ibl_backend_set_n_threads(b, n_threads);
    return b;
}

// Entry points a backend publishes through its registry (ggml-cpu: ggml_backend_cpu_get_proc_address).
template <typename F>
static F backend_proc(ggml_backend_t backend, const char * name) {
    ggml_backend_dev_t dev = ggml_backend_get_device(backend);
    ggml_backend_reg_t reg = dev ? ggml_backend_dev_backend_reg(dev) : nullptr;
    return reg ? (F) ggml_backend_reg_get_proc_address(reg, name) : nullptr;
}

void ibl_backend_set_n_threads(ggml_backend_t backend, int n_threads) {
    if (auto fn = backend_proc<ggml_backend_set_n_threads_t>(backend, "ggml_backend_set_n_threads")) fn(backend, ibl_threads_resolve(n_threads));
}

void ibl_backend_set_abort_callback(ggml_backend_t backend, ggml_abort_callback cb, void * data) {
    if (auto fn = backend_proc<ggml_backend_set_abort_callback_t>(backend, "ggml_backend_set_abort_callback")) fn(backend, cb, data);
}
