// GGUF reading (inspection) and streaming writing, on ggml's own gguf API.
//
// The writer is what every converter uses: metadata and tensor infos first, then tensor data
// streamed one tensor at a time, so a multi-GB checkpoint never has to be in memory at once.
#pragma once

#include "ggml.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <atomic>
#include <functional>
#include <string>
#include <vector>

struct gguf_context;

// One metadata value. Integers keep their exact 64-bit value; arrays hold their elements in the
// vector of their kind.
struct ibl_gguf_kv {
    std::string key;
    std::string type;       // gguf type name of the value: "u32", "f32", "string", "array", ...
    std::string elem_type;  // for arrays: the element type name
    bool        is_array = false;
    bool        is_signed = false;  // integers: which vector holds them
    std::vector<int64_t>     i64;   // signed integers and bools
    std::vector<uint64_t>    u64;   // unsigned integers
    std::vector<double>      f64;   // f32/f64
    std::vector<std::string> str;   // strings
};

struct ibl_gguf_tensor_info {
    std::string          name;
    std::string          type;    // ggml_type_name
    std::vector<int64_t> shape;   // ggml order: ne[0] is the fastest-varying dimension
    uint64_t             offset;  // absolute byte offset of the data in the file
    uint64_t             size;    // bytes
};

struct ibl_gguf_info {
    uint32_t version     = 0;
    uint64_t alignment   = 0;
    uint64_t data_offset = 0;
    uint64_t file_size   = 0;
    std::vector<ibl_gguf_kv>          kv;
    std::vector<ibl_gguf_tensor_info> tensors;
};

// The size of a regular file; throws ERR_FILE_NOT_FOUND / ERR_FILE_READ (directories too) naming it.
uint64_t ibl_file_size(const std::string & path);

// Reads the header, metadata and tensor table of a GGUF file (no tensor data). Throws ibl_error
// naming the file for a missing, truncated or non-GGUF file, or tensor data that runs past the end.
ibl_gguf_info ibl_gguf_inspect(const std::string & path);

// Opens a GGUF for reading with the same checks; the caller owns the result (gguf_free).
gguf_context * ibl_gguf_open(const std::string & path, struct ggml_context ** tensors_ctx);

// Reads the data of every tensor of `g` that `ctx` holds and that is allocated in a backend buffer
// (host buffers are read into directly, others through a staging copy); tensors `ctx` lacks or that
// are not allocated are skipped. Throws ERR_GGUF_TRUNCATED naming the file and tensor, and
// ERR_MODEL_INVALID for data holding NaN or infinite values. With a
// monitor: progress(bytes done, bytes total) after each tensor, and ERR_ABORTED once abort is set.
struct ibl_load_monitor {
    const std::atomic<bool> *                   abort = nullptr;
    std::function<void(uint64_t, uint64_t)>     progress;
};
void ibl_gguf_load_tensor_data(const std::string & path, const gguf_context * g, struct ggml_context * ctx,
                               const ibl_load_monitor * monitor = nullptr);

// The same for just `tensors` (each allocated, each named as in `g`).
void ibl_gguf_load_tensors(const std::string & path, const gguf_context * g, const std::vector<struct ggml_tensor *> & tensors,
                           const ibl_load_monitor * monitor = nullptr);

// Type names as the CLI and metadata spell them: "f32", "f16", "q8_0", "q4_0", "q4_k", ...
ggml_type ibl_ggml_type_from_name(const std::string & name);  // throws ERR_INVALID_ARG

// Converts n_rows rows of n_per_row floats to `type` with ggml's own routines (f32 copy, f16, or a
// quantization); throws when the row length is not a multiple of the type's block size.
std::vector<uint8_t> ibl_convert_rows(ggml_type type, const float * src, int64_t n_rows, int64_t n_per_row);

class ibl_gguf_writer {
public:
    ibl_gguf_writer();
    ~ibl_gguf_writer();
    ibl_gguf_writer(const ibl_gguf_writer &) = delete;
    ibl_gguf_writer & operator=(const ibl_gguf_writer &) = delete;

    // Metadata (before begin()).
    void set_u8(const std::string & key, uint8_t v);
    void set_i8(const std::string & key, int8_t v);
    void set_u16(const std::string & key, uint16_t v);
    void set_i16(const std::string & key, int16_t v);
    void set_u32(const std::string & key, uint32_t v);
    void set_i32(const std::string & key, int32_t v);
    void set_u64(const std::string & key, uint64_t v);
    void set_i64(const std::string & key, int64_t v);
    void set_f32(const std::string & key, float v);
    void set_f64(const std::string & key, double v);
    void set_bool(const std::string & key, bool v);
    void set_str(const std::string & key, const std::string & v);
    void set_arr_str(const std::string & key, const std::vector<std::string> & v);
    // elem: a gguf numeric type name ("u8", "i32", "f32", ...); data holds n packed elements.
    void set_arr_data(const std::string & key, const std::string & elem, const void * data, size_t n);

    // Declares a tensor (before begin()); shape in ggml order. Data must then be written in the
    // order tensors were declared.
    void add_tensor(const std::string & name, ggml_type type, const std::vector<int64_t> & shape);

    // Writes header, metadata and tensor table to `path` (to a temporary name first; finish()
    // renames it, so a failed conversion never leaves a plausible-looking file behind).
    void begin(const std::string & path);
    // Writes the next declared tensor's data: exactly its byte size.
    void write_tensor_data(const std::string & name, const void * data, size_t nbytes);
    void finish();

    size_t tensor_nbytes(const std::string & name) const;

private:
    void check_key(const std::string & key) const;
    struct ggml_context * tensor_ctx();

    gguf_context *                     gguf_ = nullptr;
    std::vector<struct ggml_context *> ctxs_;
    size_t                             n_in_ctx_ = 0;
    std::vector<std::string>           order_;
    size_t                             next_ = 0;
    FILE *                             file_ = nullptr;
    std::string                        path_, tmp_path_;
    uint64_t                           written_ = 0;  // bytes of tensor data written so far (padded)
};

// Typed metadata lookups with range checks; errors name the file and the key. An absent key yields
// `dflt` unless `required`. Integer keys may be stored as any GGUF integer type.
int64_t                  ibl_gguf_int(const gguf_context * ctx, const std::string & file, const std::string & key,
                                      bool required, int64_t dflt, int64_t lo, int64_t hi);
double                   ibl_gguf_float(const gguf_context * ctx, const std::string & file, const std::string & key,
                                        bool required, double dflt, double lo, double hi);
bool                     ibl_gguf_bool(const gguf_context * ctx, const std::string & file, const std::string & key, bool dflt);
std::string              ibl_gguf_str(const gguf_context * ctx, const std::string & file, const std::string & key,
                                      bool required, const std::string & dflt);
std::vector<int64_t>     ibl_gguf_int_array(const gguf_context * ctx, const std::string & file, const std::string & key);
std::vector<double>      ibl_gguf_float_array(const gguf_context * ctx, const std::string & file, const std::string & key);
std::vector<std::string> ibl_gguf_str_array(const gguf_context * ctx, const std::string & file, const std::string & key);
