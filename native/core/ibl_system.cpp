#include "ibl_system.h"
#include "ibl_backend.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include "ibl_error.h"

#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

#ifndef IBL_VERSION
#define IBL_VERSION "0.0.0"
#endif
#ifndef IBL_LLAMA_TAG
#define IBL_LLAMA_TAG "unknown"
#endif
#ifndef IBL_LLAMA_COMMIT
#define IBL_LLAMA_COMMIT "unknown"
#endif

ibl_versions ibl_get_versions() {
    ibl_versions v;
    v.package      = IBL_VERSION;
    v.llama_tag    = IBL_LLAMA_TAG;
    v.llama_commit = IBL_LLAMA_COMMIT;
    v.ggml_version = ggml_version();
    v.ggml_commit  = ggml_commit();
    return v;
}

static const char * device_type_name(enum ggml_backend_dev_type t) {
    switch (t) {
        case GGML_BACKEND_DEVICE_TYPE_CPU:   return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU:   return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU:  return "igpu";
        case GGML_BACKEND_DEVICE_TYPE_ACCEL: return "accel";
        default:                             return "unknown";
    }
}

std::vector<ibl_backend_info> ibl_get_backends() {
    ibl_backends_init();
    std::vector<ibl_backend_info> out;
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        ggml_backend_reg_t reg = ggml_backend_reg_get(i);
        ibl_backend_info b;
        b.name = ggml_backend_reg_name(reg);
        // Backends publish their compile-time features (CPU: SSE3, AVX2, FMA, F16C, ...) through this
        // optional entry point.
        auto get_features = (ggml_backend_get_features_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features");
        if (get_features) {
            for (ggml_backend_feature * f = get_features(reg); f && f->name; ++f) {
                b.features.emplace_back(f->name, f->value ? f->value : "");
            }
        }
        for (size_t j = 0; j < ggml_backend_reg_dev_count(reg); ++j) {
            ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, j);
            ibl_device_info d;
            d.name        = ggml_backend_dev_name(dev);
            d.description = ggml_backend_dev_description(dev);
            d.type        = device_type_name(ggml_backend_dev_type(dev));
            d.backend     = b.name;
            size_t free_mem = 0, total_mem = 0;
            ggml_backend_dev_memory(dev, &free_mem, &total_mem);
            d.memory_free  = free_mem;
            d.memory_total = total_mem;
            b.devices.push_back(std::move(d));
        }
        out.push_back(std::move(b));
    }
    return out;
}

ibl_modules_info ibl_get_modules() {
    const ibl_backend_load_info & l = ibl_backends_loaded();
    return ibl_modules_info{l.dir, l.cpu_module, l.cpu_variant, l.modules};
}

std::string ibl_get_system_info() {
    ibl_backends_init();
    return llama_print_system_info();
}

void ibl_release_free_memory() {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}
