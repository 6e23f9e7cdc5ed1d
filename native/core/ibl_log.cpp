// Routes ggml's and llama.cpp's logs through us (see ibl_error.h).
#include "ibl_error.h"

#include "ggml.h"
#include "llama.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

static std::atomic<bool> g_verbose{false};
static thread_local std::string t_last_error;
static thread_local ggml_log_level t_last_level = GGML_LOG_LEVEL_NONE;

static void ibl_log_callback(ggml_log_level level, const char * text, void * /*user*/) {
    // GGML_LOG_LEVEL_CONT continues the previous line at its level.
    const ggml_log_level eff = level == GGML_LOG_LEVEL_CONT ? t_last_level : level;
    if (level != GGML_LOG_LEVEL_CONT) t_last_level = level;
    if (eff == GGML_LOG_LEVEL_ERROR) {
        if (level != GGML_LOG_LEVEL_CONT && t_last_error.size() > 4096) t_last_error.clear();
        t_last_error += text;
    }
    if (g_verbose.load() || (eff == GGML_LOG_LEVEL_ERROR && std::getenv("IMAGEBIND_LLM_LOG_ERRORS"))) {
        fputs(text, stderr);
    }
}

void ibl_log_init() {
    static bool done = false;
    if (done) return;
    done = true;
    if (const char * v = std::getenv("IMAGEBIND_LLM_VERBOSE")) g_verbose = v[0] && v[0] != '0';
    ggml_log_set(ibl_log_callback, nullptr);
    llama_log_set(ibl_log_callback, nullptr);
}

void ibl_log_set_verbose(bool verbose) { g_verbose = verbose; }

void ibl_log_clear_last_error() { t_last_error.clear(); }

std::string ibl_log_last_error() {
    // The first line says what went wrong first (the next ones are the callers giving up); its
    // "function_name: " prefix means nothing to a user.
    std::string s = t_last_error;
    const size_t nl = s.find('\n');
    if (nl != std::string::npos) s.resize(nl);
    const size_t colon = s.find(": ");
    if (colon != std::string::npos && s.find(' ') > colon) s.erase(0, colon + 2);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}
