// What this build is and what it can run on: versions, ggml backends and devices, CPU features.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

struct ibl_versions {
    std::string package;       // imagebind-llm version the addon was built from
    std::string llama_tag;     // pinned llama.cpp release tag
    std::string llama_commit;  // pinned llama.cpp commit (the source bundle's HEAD)
    std::string ggml_version;  // ggml_version()
    std::string ggml_commit;   // ggml_commit()
};

struct ibl_device_info {
    std::string name;
    std::string description;
    std::string type;    // "cpu", "gpu", "igpu", "accel"
    std::string backend; // the registry it belongs to
    uint64_t    memory_free  = 0;
    uint64_t    memory_total = 0;
};

struct ibl_backend_info {
    std::string name;
    std::vector<std::pair<std::string, std::string>> features;  // e.g. ("AVX2", "1")
    std::vector<ibl_device_info> devices;
};

// The backend modules loaded at run time (ibl_backend.h): where from, and which CPU variant was chosen.
struct ibl_modules_info {
    std::string dir;
    std::string cpu_module;   // e.g. libggml-cpu-zen4.so
    std::string cpu_variant;  // e.g. zen4; "native" for a source build's -march=native module
    std::vector<std::string> modules;
};

ibl_versions                  ibl_get_versions();
ibl_modules_info              ibl_get_modules();      // loads the backends on first use
std::vector<ibl_backend_info> ibl_get_backends();
std::string                   ibl_get_system_info();  // llama_print_system_info()

// Gives freed heap memory back to the system where the C library keeps it (glibc's per-thread arenas
// hold freed model weights otherwise): called after a model is freed.
void                          ibl_release_free_memory();
