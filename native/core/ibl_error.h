// Errors of the C++ core: an exception with a stable code and a message that names the file and the
// problem. The N-API layer turns it into a JS Error with `code`; the driver prints it. Nothing in the
// core asserts on user input.
#pragma once

#include <stdexcept>
#include <string>

struct ibl_error : std::runtime_error {
    std::string code;  // e.g. "ERR_FILE_NOT_FOUND", "ERR_GGUF_INVALID"
    ibl_error(std::string code, const std::string & msg) : std::runtime_error(msg), code(std::move(code)) {}
};

[[noreturn]] void ibl_throw(const char * code, const char * fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

// ggml/llama.cpp report errors only to their log callback. We route both logs through here: the last
// error-level lines of the calling thread are kept so that a failed ggml call can be explained.
void        ibl_log_init();
void        ibl_log_set_verbose(bool verbose);
void        ibl_log_clear_last_error();
std::string ibl_log_last_error();
