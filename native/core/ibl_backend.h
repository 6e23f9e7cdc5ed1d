// ggml's backends, loaded at run time (GGML_BACKEND_DL), and the few backend calls the core makes.
//
// Every build (the source build, the prebuilt packages, the plain-CMake driver build) puts ggml's
// backend modules next to libggml: one CPU module (a source build's -march=native one, or the packages'
// per-microarchitecture variants, libggml-cpu-<variant>.so) and optionally GPU modules (Vulkan, CUDA,
// Metal). They are loaded once, on first use, from that directory. The CPU backend is a module too, so
// its own functions (set_n_threads, set_abort_callback, cpu_init) are reached through the registry.
#pragma once

#include "ggml-backend.h"

#include <string>
#include <vector>

// Loads the backend modules (once; later calls return at once). Throws ERR_NO_BACKEND when no CPU
// backend could be loaded (the message names the directory searched). Environment:
//   IMAGEBIND_LLM_CPU_VARIANT=<name>  load libggml-cpu-<name> instead of the best one for this CPU
//   GGML_BACKEND_PATH=<file>          an extra out-of-tree backend module (ggml's own variable)
void ibl_backends_init();

// A further directory of GPU backend modules (a GPU flavour package: libggml-vulkan.so, …), loaded with
// the rest by ibl_backends_init. CPU modules there are ignored. Returns false once the backends are
// loaded (too late).
bool ibl_backends_add_dir(const std::string & dir);

struct ibl_backend_load_info {
    std::string dir;          // where the modules were looked for
    std::string cpu_module;   // file name of the CPU module loaded, e.g. libggml-cpu-haswell.so
    std::string cpu_variant;  // "haswell", "zen4", …; "native" for a source build's single module
    std::vector<std::string> modules;  // every module file loaded
};
const ibl_backend_load_info & ibl_backends_loaded();

// The device for `want`: "auto" (the first GPU / integrated GPU, else the CPU), "gpu" (a GPU or an
// error), "cpu", or a device name as ggml reports it ("CPU", "Vulkan0", "CUDA0", "MTL0"; any case).
// An unknown name is ERR_NO_DEVICE naming `what` and listing the devices there are.
ggml_backend_dev_t ibl_device_pick(const std::string & want, const std::string & what);
bool               ibl_device_is_cpu(ggml_backend_dev_t dev);
std::string        ibl_device_names();      // "Vulkan0, CPU"
std::string        ibl_gpu_device_names();  // the GPU / integrated GPU devices: "Vulkan0" ("" when none)

// A CPU backend with n_threads threads (ERR_NO_DEVICE when it cannot be created).
ggml_backend_t ibl_cpu_backend_init(int n_threads);
// Through the backend's registry: a no-op on backends without the entry point (GPU backends).
void ibl_backend_set_n_threads(ggml_backend_t backend, int n_threads);
void ibl_backend_set_abort_callback(ggml_backend_t backend, ggml_abort_callback cb, void * data);
