#include "ibl_gguf.h"
#include "ibl_error.h"

#include "gguf.h"
#include "ggml-backend.h"

#include <cerrno>
#include <cstring>
#include <sys/stat.h>

// GGUF header: magic "GGUF", u32 version, i64 n_tensors, i64 n_kv (ref: ggml/include/gguf.h).
static constexpr size_t GGUF_HEADER_SIZE = 4 + 4 + 8 + 8;

uint64_t ibl_file_size(const std::string & path) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) ibl_throw("ERR_FILE_NOT_FOUND", "%s: file not found", path.c_str());
        ibl_throw("ERR_FILE_READ", "%s: cannot access file: %s", path.c_str(), strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) ibl_throw("ERR_FILE_READ", "%s: is a directory, expected a .gguf file", path.c_str());
    // A FIFO would block the open, a device (/dev/zero) never ends.
    if (!S_ISREG(st.st_mode)) ibl_throw("ERR_FILE_READ", "%s: not a regular file (a FIFO, device or socket)", path.c_str());
    return (uint64_t) st.st_size;
}

// Checks what gguf_init_from_file would only log: that this is a GGUF at all, of a version we read.
static void check_header(const std::string & path, uint64_t size) {
    if (size < GGUF_HEADER_SIZE) {
        ibl_throw("ERR_GGUF_INVALID", "%s: not a GGUF file (%llu bytes, shorter than a GGUF header)",
                  path.c_str(), (unsigned long long) size);
    }
    FILE * f = fopen(path.c_str(), "rb");
    if (!f) ibl_throw("ERR_FILE_READ", "%s: cannot open: %s", path.c_str(), strerror(errno));
    unsigned char hdr[8];
    const size_t n = fread(hdr, 1, sizeof(hdr), f);
    fclose(f);
    if (n != sizeof(hdr)) ibl_throw("ERR_FILE_READ", "%s: cannot read the header", path.c_str());
    if (memcmp(hdr, "GGUF", 4) != 0) {
        char got[32];
        snprintf(got, sizeof(got), "%02x %02x %02x %02x", hdr[0], hdr[1], hdr[2], hdr[3]);
        ibl_throw("ERR_GGUF_INVALID", "%s: not a GGUF file (expected magic \"GGUF\", found bytes %s)", path.c_str(), got);
    }
    const uint32_t version = hdr[4] | (hdr[5] << 8) | (hdr[6] << 16) | ((uint32_t) hdr[7] << 24);
    if (version < 2 || version > 3) {
        ibl_throw("ERR_GGUF_INVALID", "%s: unsupported GGUF version %u (this build reads versions 2 and 3)", path.c_str(), version);
    }
}

gguf_context * ibl_gguf_open(const std::string & path, struct ggml_context ** tensors_ctx) {
    ibl_log_init();
    const uint64_t size = ibl_file_size(path);
    check_header(path, size);
    ibl_log_clear_last_error();
    gguf_init_params params = { /*no_alloc*/ true, /*ctx*/ tensors_ctx };
    gguf_context * ctx = gguf_init_from_file(path.c_str(), params);
    if (!ctx) {
        const std::string why = ibl_log_last_error();
        ibl_throw("ERR_GGUF_INVALID", "%s: corrupt or truncated GGUF file%s%s", path.c_str(),
                  why.empty() ? "" : ": ", why.c_str());
    }
    // gguf_init_from_file checks the table, not that the data is really there.
    const int64_t n = gguf_get_n_tensors(ctx);
    const uint64_t data_offset = gguf_get_data_offset(ctx);
    for (int64_t i = 0; i < n; ++i) {
        const uint64_t end = data_offset + gguf_get_tensor_offset(ctx, i) + gguf_get_tensor_size(ctx, i);
        if (end > size) {
            const std::string name = gguf_get_tensor_name(ctx, i);
            gguf_free(ctx);
            if (tensors_ctx && *tensors_ctx) { ggml_free(*tensors_ctx); *tensors_ctx = nullptr; }
            ibl_throw("ERR_GGUF_TRUNCATED", "%s: truncated GGUF file: tensor '%s' ends at byte %llu but the file has %llu bytes",
                      path.c_str(), name.c_str(), (unsigned long long) end, (unsigned long long) size);
        }
    }
    return ctx;
}

static const char * short_type_name(gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8:   return "u8";
        case GGUF_TYPE_INT8:    return "i8";
        case GGUF_TYPE_UINT16:  return "u16";
        case GGUF_TYPE_INT16:   return "i16";
        case GGUF_TYPE_UINT32:  return "u32";
        case GGUF_TYPE_INT32:   return "i32";
        case GGUF_TYPE_FLOAT32: return "f32";
        case GGUF_TYPE_BOOL:    return "bool";
        case GGUF_TYPE_STRING:  return "string";
        case GGUF_TYPE_ARRAY:   return "array";
        case GGUF_TYPE_UINT64:  return "u64";
        case GGUF_TYPE_INT64:   return "i64";
        case GGUF_TYPE_FLOAT64: return "f64";
        default:                return "unknown";
    }
}

// Appends element i of a scalar or array value of numeric type t at p to kv.
static void push_number(ibl_gguf_kv & kv, gguf_type t, const void * p, size_t i) {
    switch (t) {
        case GGUF_TYPE_UINT8:   kv.u64.push_back(((const uint8_t  *) p)[i]); break;
        case GGUF_TYPE_UINT16:  kv.u64.push_back(((const uint16_t *) p)[i]); break;
        case GGUF_TYPE_UINT32:  kv.u64.push_back(((const uint32_t *) p)[i]); break;
        case GGUF_TYPE_UINT64:  kv.u64.push_back(((const uint64_t *) p)[i]); break;
        case GGUF_TYPE_INT8:    kv.i64.push_back(((const int8_t   *) p)[i]); kv.is_signed = true; break;
        case GGUF_TYPE_INT16:   kv.i64.push_back(((const int16_t  *) p)[i]); kv.is_signed = true; break;
        case GGUF_TYPE_INT32:   kv.i64.push_back(((const int32_t  *) p)[i]); kv.is_signed = true; break;
        case GGUF_TYPE_INT64:   kv.i64.push_back(((const int64_t  *) p)[i]); kv.is_signed = true; break;
        case GGUF_TYPE_BOOL:    kv.i64.push_back(((const int8_t   *) p)[i] != 0); kv.is_signed = true; break;
        case GGUF_TYPE_FLOAT32: kv.f64.push_back(((const float    *) p)[i]); break;
        case GGUF_TYPE_FLOAT64: kv.f64.push_back(((const double   *) p)[i]); break;
        default: break;
    }
}

ibl_gguf_info ibl_gguf_inspect(const std::string & path) {
    gguf_context * ctx = ibl_gguf_open(path, nullptr);
    ibl_gguf_info info;
    info.version     = gguf_get_version(ctx);
    info.alignment   = gguf_get_alignment(ctx);
    info.data_offset = gguf_get_data_offset(ctx);
    info.file_size   = ibl_file_size(path);

    const int64_t n_kv = gguf_get_n_kv(ctx);
    for (int64_t i = 0; i < n_kv; ++i) {
        ibl_gguf_kv kv;
        kv.key = gguf_get_key(ctx, i);
        const gguf_type t = gguf_get_kv_type(ctx, i);
        kv.type = short_type_name(t);
        if (t == GGUF_TYPE_ARRAY) {
            kv.is_array = true;
            const gguf_type et = gguf_get_arr_type(ctx, i);
            kv.elem_type = short_type_name(et);
            const size_t n = gguf_get_arr_n(ctx, i);
            if (et == GGUF_TYPE_STRING) {
                kv.str.reserve(n);
                for (size_t j = 0; j < n; ++j) kv.str.push_back(gguf_get_arr_str(ctx, i, j));
            } else if (et != GGUF_TYPE_ARRAY) {
                const void * data = gguf_get_arr_data(ctx, i);
                for (size_t j = 0; j < n; ++j) push_number(kv, et, data, j);
            }
        } else if (t == GGUF_TYPE_STRING) {
            kv.str.push_back(gguf_get_val_str(ctx, i));
        } else {
            push_number(kv, t, gguf_get_val_data(ctx, i), 0);
        }
        info.kv.push_back(std::move(kv));
    }

    const int64_t n_t = gguf_get_n_tensors(ctx);
    for (int64_t i = 0; i < n_t; ++i) {
        ibl_gguf_tensor_info ti;
        ti.name = gguf_get_tensor_name(ctx, i);
        const ggml_type type = gguf_get_tensor_type(ctx, i);
        ti.type = ggml_type_name(type);
        const int64_t * ne = gguf_get_tensor_ne(ctx, i);
        int n_dims = GGML_MAX_DIMS;
        while (n_dims > 1 && ne[n_dims - 1] == 1) --n_dims;
        ti.shape.assign(ne, ne + n_dims);
        ti.offset = info.data_offset + gguf_get_tensor_offset(ctx, i);
        ti.size   = gguf_get_tensor_size(ctx, i);
        info.tensors.push_back(std::move(ti));
    }
    gguf_free(ctx);
    return info;
}

ggml_type ibl_ggml_type_from_name(const std::string & name) {
    for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
        const auto * traits = ggml_get_type_traits((ggml_type) t);
        if (traits->type_name && name == traits->type_name && traits->blck_size > 0) return (ggml_type) t;
    }
    ibl_throw("ERR_INVALID_ARG", "unknown tensor type '%s' (expected e.g. f32, f16, q8_0, q4_0, q4_K)", name.c_str());
}

std::vector<uint8_t> ibl_convert_rows(ggml_type type, const float * src, int64_t n_rows, int64_t n_per_row) {
    if (n_rows < 0 || n_per_row <= 0) ibl_throw("ERR_INVALID_ARG", "invalid tensor shape for conversion");
    const int64_t blck = ggml_blck_size(type);
    if (n_per_row % blck != 0) {
        ibl_throw("ERR_INVALID_ARG", "cannot store rows of %lld values as %s: the row length must be a multiple of %lld",
                  (long long) n_per_row, ggml_type_name(type), (long long) blck);
    }
    if (ggml_quantize_requires_imatrix(type)) {
        ibl_throw("ERR_INVALID_ARG", "type %s needs an importance matrix; not supported here", ggml_type_name(type));
    }
    const size_t row_size = ggml_row_size(type, n_per_row);
    std::vector<uint8_t> out(row_size * (size_t) n_rows);
    if (type == GGML_TYPE_F32) {
        memcpy(out.data(), src, out.size());
    } else if (type == GGML_TYPE_F16) {
        ggml_fp32_to_fp16_row(src, (ggml_fp16_t *) out.data(), n_rows * n_per_row);
    } else if (type == GGML_TYPE_BF16) {
        ggml_fp32_to_bf16_row(src, (ggml_bf16_t *) out.data(), n_rows * n_per_row);  // round to nearest even
    } else {
        const auto * traits = ggml_get_type_traits(type);
        if (!traits->is_quantized) ibl_throw("ERR_INVALID_ARG", "cannot convert to type %s", ggml_type_name(type));
        ggml_quantize_chunk(type, src, out.data(), 0, n_rows, n_per_row, nullptr);
    }
    return out;
}

// --- typed metadata lookups ---------------------------------------------------------------------

static bool is_int_type(gguf_type t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_INT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_INT16 ||
           t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64;
}

static int64_t int_at(gguf_type t, const void * p, size_t i) {
    switch (t) {
        case GGUF_TYPE_UINT8:  return ((const uint8_t  *) p)[i];
        case GGUF_TYPE_INT8:   return ((const int8_t   *) p)[i];
        case GGUF_TYPE_UINT16: return ((const uint16_t *) p)[i];
        case GGUF_TYPE_INT16:  return ((const int16_t  *) p)[i];
        case GGUF_TYPE_UINT32: return ((const uint32_t *) p)[i];
        case GGUF_TYPE_INT32:  return ((const int32_t  *) p)[i];
        case GGUF_TYPE_UINT64: return (int64_t) ((const uint64_t *) p)[i];
        case GGUF_TYPE_INT64:  return ((const int64_t  *) p)[i];
        default:               return 0;
    }
}

static int64_t find_key(const gguf_context * ctx, const std::string & file, const std::string & key, bool required) {
    const int64_t id = gguf_find_key(ctx, key.c_str());
    if (id < 0 && required) ibl_throw("ERR_MODEL_INVALID", "%s: missing metadata key '%s'", file.c_str(), key.c_str());
    return id;
}

int64_t ibl_gguf_int(const gguf_context * ctx, const std::string & file, const std::string & key, bool required,
                     int64_t dflt, int64_t lo, int64_t hi) {
    const int64_t id = find_key(ctx, file, key, required);
    if (id < 0) return dflt;
    const gguf_type t = gguf_get_kv_type(ctx, id);
    if (!is_int_type(t)) ibl_throw("ERR_MODEL_INVALID", "%s: metadata '%s' is a %s, expected an integer", file.c_str(), key.c_str(), gguf_type_name(t));
    const int64_t v = int_at(t, gguf_get_val_data(ctx, id), 0);
    if (v < lo || v > hi) {
        ibl_throw("ERR_MODEL_INVALID", "%s: metadata '%s' = %lld is out of range [%lld, %lld]", file.c_str(), key.c_str(),
                  (long long) v, (long long) lo, (long long) hi);
    }
    return v;
}

double ibl_gguf_float(const gguf_context * ctx, const std::string & file, const std::string & key, bool required,
                      double dflt, double lo, double hi) {
    const int64_t id = find_key(ctx, file, key, required);
    if (id < 0) return dflt;
    const gguf_type t = gguf_get_kv_type(ctx, id);
    double v;
    if (t == GGUF_TYPE_FLOAT32) v = gguf_get_val_f32(ctx, id);
    else if (t == GGUF_TYPE_FLOAT64) v = gguf_get_val_f64(ctx, id);
    else if (is_int_type(t)) v = (double) int_at(t, gguf_get_val_data(ctx, id), 0);
    else ibl_throw("ERR_MODEL_INVALID", "%s: metadata '%s' is a %s, expected a number", file.c_str(), key.c_str(), gguf_type_name(t));
    if (!(v >= lo && v <= hi)) ibl_throw("ERR_MODEL_INVALID", "%s: metadata '%s' = %g is out of range [%g, %g]", file.c_str(), key.c_str(), v, lo, hi);
    return v;
}

bool ibl_gguf_bool(const gguf_context * ctx, const std::string & file, const std::string & key, bool dflt) {
    const int64_t id = find_key(ctx, file, key, false);
    if (id < 0) return dflt;
    const gguf_type t = gguf_get_kv_type(ctx, id);
    if (t == GGUF_TYPE_BOOL) return gguf_get_val_bool(ctx, id);
    if (is_int_type(t)) return int_at(t, gguf_get_val_data(ctx, id), 0) != 0;
    ibl_throw("ERR_MODEL_INVALID", "%s: metadata '%s' is a %s, expected a bool", file.c_str(), key.c_str(), gguf_type_name(t));
}

std::string ibl_gguf_str(const gguf_context * ctx, const std::string & file, const std::string & key, bool required,
                         const std::string & dflt) {
    const int64_t id = find_key(ctx, file, key, required);
    if (id < 0) return dflt;
    if (gguf_get_kv_type(ctx, id) != GGUF_TYPE_STRING) {
        ibl_throw("ERR_MODEL_INVALID", "%s: metadata '%s' is not a string", file.c_str(), key.c_str());
    }
    return gguf_get_val_str(ctx, id);
}

static int64_t find_array(const gguf_context * ctx, const std::string & file, const std::string & key) {
    const int64_t id = find_key(ctx, file, key, false);
    if (id >= 0 && gguf_get_kv_type(ctx, id) != GGUF_TYPE_ARRAY) {
        ibl_throw("ERR_MODEL_INVALID", "%s: metadata '%s' is not an array", file.c_str(), key.c_str());
    }
    return id;
}

std::vector<int64_t> ibl_gguf_int_array(const gguf_context * ctx, const std::string & file, const std::string & key) {
    std::vector<int64_t> out;
    const int64_t id = find_array(ctx, file, key);
    if (id < 0) return out;
    const gguf_type et = gguf_get_arr_type(ctx, id);
    if (!is_int_type(et)) ibl_throw("ERR_MODEL_INVALID", "%s: metadata '%s' is not an integer array", file.c_str(), key.c_str());
    const void * data = gguf_get_arr_data(ctx, id);
    for (size_t i = 0; i < gguf_get_arr_n(ctx, id); ++i) out.push_back(int_at(et, data, i));
    return out;
}

std::vector<double> ibl_gguf_float_array(const gguf_context * ctx, const std::string & file, const std::string & key) {
    std::vector<double> out;
    const int64_t id = find_array(ctx, file, key);
    if (id < 0) return out;
    const gguf_type et = gguf_get_arr_type(ctx, id);
    const void * data = gguf_get_arr_data(ctx, id);
    const size_t n = gguf_get_arr_n(ctx, id);
    for (size_t i = 0; i < n; ++i) {
        if (et == GGUF_TYPE_FLOAT32) out.push_back(((const float *) data)[i]);
        else if (et == GGUF_TYPE_FLOAT64) out.push_back(((const double *) data)[i]);
        else ibl_throw("ERR_MODEL_INVALID", "%s: metadata '%s' is not a float array", file.c_str(), key.c_str());
    }
    return out;
}

std::vector<std::string> ibl_gguf_str_array(const gguf_context * ctx, const std::string & file, const std::string & key) {
    std::vector<std::string> out;
    const int64_t id = find_array(ctx, file, key);
    if (id < 0) return out;
    if (gguf_get_arr_type(ctx, id) != GGUF_TYPE_STRING) ibl_throw("ERR_MODEL_INVALID", "%s: metadata '%s' is not a string array", file.c_str(), key.c_str());
    const size_t n = gguf_get_arr_n(ctx, id);
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) out.push_back(gguf_get_arr_str(ctx, id, i));
    return out;
}

void ibl_gguf_load_tensor_data(const std::string & path, const gguf_context * g, struct ggml_context * ctx,
                               const ibl_load_monitor * monitor) {
    std::vector<ggml_tensor *> tensors;
    for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i) {
        ggml_tensor * t = ggml_get_tensor(ctx, gguf_get_tensor_name(g, i));
        if (t && t->buffer) tensors.push_back(t);
    }
    ibl_gguf_load_tensors(path, g, tensors, monitor);
}

void ibl_gguf_load_tensors(const std::string & path, const gguf_context * g, const std::vector<ggml_tensor *> & tensors,
                           const ibl_load_monitor * monitor) {
    FILE * f = fopen(path.c_str(), "rb");
    if (!f) ibl_throw("ERR_FILE_READ", "%s: cannot open: %s", path.c_str(), strerror(errno));
    std::vector<uint8_t> staging;
    const uint64_t data_offset = gguf_get_data_offset(g);
    uint64_t total = 0, done = 0;
    for (const ggml_tensor * t : tensors) total += ggml_nbytes(t);
    for (ggml_tensor * t : tensors) {
        const int64_t i = gguf_find_tensor(g, t->name);
        if (i < 0) {
            fclose(f);
            ibl_throw("ERR_MODEL_INVALID", "%s: no tensor '%s' in the file", path.c_str(), t->name);
        }
        if (monitor && monitor->abort && monitor->abort->load()) {
            fclose(f);
            ibl_throw("ERR_ABORTED", "%s: loading aborted", path.c_str());
        }
        const size_t n = ggml_nbytes(t);
        const uint64_t off = data_offset + gguf_get_tensor_offset(g, i);
#ifdef _WIN32
        const int rc = _fseeki64(f, (long long) off, SEEK_SET);
#else
        const int rc = fseeko(f, (off_t) off, SEEK_SET);
#endif
        const bool host = ggml_backend_buffer_is_host(t->buffer);
        uint8_t * dst = host ? (uint8_t *) t->data : (staging.resize(n), staging.data());
        if (rc != 0 || fread(dst, 1, n, f) != n) {
            fclose(f);
            ibl_throw("ERR_GGUF_TRUNCATED", "%s: cannot read tensor '%s'", path.c_str(), t->name);
        }
        // NaN/Inf in the weights (float values or block scales) would only show as NaN outputs.
        if (!ggml_validate_row_data(t->type, dst, n)) {
            fclose(f);
            ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' holds NaN or infinite values", path.c_str(), t->name);
        }
        if (!host) ggml_backend_tensor_set(t, dst, 0, n);
        done += n;
        if (monitor && monitor->progress) monitor->progress(done, total);
    }
    fclose(f);
}
