#include "ibl_gguf.h"
#include "ibl_error.h"

#include "gguf.h"

#include <atomic>
#include <cerrno>
#include <cstring>

#ifdef _WIN32
#include <process.h>
static unsigned long ibl_process_id() { return (unsigned long) _getpid(); }
#else
#include <unistd.h>
static unsigned long ibl_process_id() { return (unsigned long) getpid(); }
#endif

// Tensor infos live in no_alloc ggml contexts (gguf_add_tensor copies a ggml_tensor); we open a new
// one every this many tensors.
static constexpr size_t TENSORS_PER_CTX = 512;

ibl_gguf_writer::ibl_gguf_writer() {
    ibl_log_init();
    gguf_ = gguf_init_empty();
    if (!gguf_) ibl_throw("ERR_OUT_OF_MEMORY", "cannot create a GGUF context");
}

ibl_gguf_writer::~ibl_gguf_writer() {
    if (file_) {
        fclose(file_);
        remove(tmp_path_.c_str());
    }
    for (auto * c : ctxs_) ggml_free(c);
    gguf_free(gguf_);
}

void ibl_gguf_writer::check_key(const std::string & key) const {
    if (key.empty()) ibl_throw("ERR_INVALID_ARG", "GGUF metadata key must not be empty");
    if (file_ || next_ > 0) ibl_throw("ERR_INVALID_STATE", "GGUF metadata '%s' set after writing began", key.c_str());
}

void ibl_gguf_writer::set_u8(const std::string & k, uint8_t v)   { check_key(k); gguf_set_val_u8(gguf_, k.c_str(), v); }
void ibl_gguf_writer::set_i8(const std::string & k, int8_t v)    { check_key(k); gguf_set_val_i8(gguf_, k.c_str(), v); }
void ibl_gguf_writer::set_u16(const std::string & k, uint16_t v) { check_key(k); gguf_set_val_u16(gguf_, k.c_str(), v); }
void ibl_gguf_writer::set_i16(const std::string & k, int16_t v)  { check_key(k); gguf_set_val_i16(gguf_, k.c_str(), v); }
void ibl_gguf_writer::set_u32(const std::string & k, uint32_t v) { check_key(k); gguf_set_val_u32(gguf_, k.c_str(), v); }
void ibl_gguf_writer::set_i32(const std::string & k, int32_t v)  { check_key(k); gguf_set_val_i32(gguf_, k.c_str(), v); }
void ibl_gguf_writer::set_u64(const std::string & k, uint64_t v) { check_key(k); gguf_set_val_u64(gguf_, k.c_str(), v); }
void ibl_gguf_writer::set_i64(const std::string & k, int64_t v)  { check_key(k); gguf_set_val_i64(gguf_, k.c_str(), v); }
void ibl_gguf_writer::set_f32(const std::string & k, float v)    { check_key(k); gguf_set_val_f32(gguf_, k.c_str(), v); }
void ibl_gguf_writer::set_f64(const std::string & k, double v)   { check_key(k); gguf_set_val_f64(gguf_, k.c_str(), v); }
void ibl_gguf_writer::set_bool(const std::string & k, bool v)    { check_key(k); gguf_set_val_bool(gguf_, k.c_str(), v); }
void ibl_gguf_writer::set_str(const std::string & k, const std::string & v) {
    check_key(k);
    gguf_set_val_str(gguf_, k.c_str(), v.c_str());
}

void ibl_gguf_writer::set_arr_str(const std::string & k, const std::vector<std::string> & v) {
    check_key(k);
    std::vector<const char *> ptrs;
    ptrs.reserve(v.size());
    for (const auto & s : v) ptrs.push_back(s.c_str());
    gguf_set_arr_str(gguf_, k.c_str(), ptrs.data(), ptrs.size());
}

static gguf_type numeric_gguf_type(const std::string & name) {
    static const struct { const char * n; gguf_type t; } table[] = {
        {"u8", GGUF_TYPE_UINT8},   {"i8", GGUF_TYPE_INT8},   {"u16", GGUF_TYPE_UINT16}, {"i16", GGUF_TYPE_INT16},
        {"u32", GGUF_TYPE_UINT32}, {"i32", GGUF_TYPE_INT32}, {"u64", GGUF_TYPE_UINT64}, {"i64", GGUF_TYPE_INT64},
        {"f32", GGUF_TYPE_FLOAT32}, {"f64", GGUF_TYPE_FLOAT64}, {"bool", GGUF_TYPE_BOOL},
    };
    for (const auto & e : table) if (name == e.n) return e.t;
    ibl_throw("ERR_INVALID_ARG", "unknown GGUF array element type '%s'", name.c_str());
}

void ibl_gguf_writer::set_arr_data(const std::string & k, const std::string & elem, const void * data, size_t n) {
    check_key(k);
    gguf_set_arr_data(gguf_, k.c_str(), numeric_gguf_type(elem), data, n);
}

struct ggml_context * ibl_gguf_writer::tensor_ctx() {
    if (ctxs_.empty() || n_in_ctx_ == TENSORS_PER_CTX) {
        ggml_init_params p = { TENSORS_PER_CTX * ggml_tensor_overhead(), nullptr, /*no_alloc*/ true };
        ggml_context * c = ggml_init(p);
        if (!c) ibl_throw("ERR_OUT_OF_MEMORY", "cannot allocate a ggml context for tensor infos");
        ctxs_.push_back(c);
        n_in_ctx_ = 0;
    }
    ++n_in_ctx_;
    return ctxs_.back();
}

void ibl_gguf_writer::add_tensor(const std::string & name, ggml_type type, const std::vector<int64_t> & shape) {
    if (file_) ibl_throw("ERR_INVALID_STATE", "tensor '%s' declared after writing began", name.c_str());
    if (name.empty() || name.size() >= GGML_MAX_NAME) {
        ibl_throw("ERR_INVALID_ARG", "tensor name '%s' must have 1 to %d characters", name.c_str(), GGML_MAX_NAME - 1);
    }
    if (gguf_find_tensor(gguf_, name.c_str()) >= 0) ibl_throw("ERR_INVALID_ARG", "duplicate tensor name '%s'", name.c_str());
    if (shape.empty() || shape.size() > GGML_MAX_DIMS) {
        ibl_throw("ERR_INVALID_ARG", "tensor '%s': %zu dimensions (expected 1 to %d)", name.c_str(), shape.size(), GGML_MAX_DIMS);
    }
    for (int64_t d : shape) {
        if (d <= 0 || d > (int64_t(1) << 40)) ibl_throw("ERR_INVALID_ARG", "tensor '%s': invalid dimension %lld", name.c_str(), (long long) d);
    }
    if (type < 0 || type >= GGML_TYPE_COUNT || ggml_blck_size(type) <= 0) {
        ibl_throw("ERR_INVALID_ARG", "tensor '%s': invalid type %d", name.c_str(), (int) type);
    }
    if (shape[0] % ggml_blck_size(type) != 0) {
        ibl_throw("ERR_INVALID_ARG", "tensor '%s': first dimension %lld is not a multiple of %s's block size %lld",
                  name.c_str(), (long long) shape[0], ggml_type_name(type), (long long) ggml_blck_size(type));
    }
    int64_t ne[GGML_MAX_DIMS] = {1, 1, 1, 1};
    for (size_t i = 0; i < shape.size(); ++i) ne[i] = shape[i];
    ggml_tensor * t = ggml_new_tensor(tensor_ctx(), type, (int) shape.size(), ne);
    ggml_set_name(t, name.c_str());
    gguf_add_tensor(gguf_, t);
    order_.push_back(name);
}

size_t ibl_gguf_writer::tensor_nbytes(const std::string & name) const {
    const int64_t id = gguf_find_tensor(gguf_, name.c_str());
    if (id < 0) ibl_throw("ERR_INVALID_ARG", "no tensor '%s' declared", name.c_str());
    return gguf_get_tensor_size(gguf_, id);
}

void ibl_gguf_writer::begin(const std::string & path) {
    if (file_) ibl_throw("ERR_INVALID_STATE", "GGUF writing already began");
    path_     = path;
    // A name no user owns (not `<path>.partial`): this process and a counter.
    static std::atomic<uint64_t> counter{0};
    tmp_path_ = path + ".ibl-" + std::to_string((unsigned long long) ibl_process_id()) + "-" + std::to_string(counter++) + ".tmp";
    file_ = fopen(tmp_path_.c_str(), "wb");
    if (!file_) ibl_throw("ERR_FILE_WRITE", "%s: cannot create file: %s", tmp_path_.c_str(), strerror(errno));
    std::vector<uint8_t> meta(gguf_get_meta_size(gguf_));
    gguf_get_meta_data(gguf_, meta.data());
    if (fwrite(meta.data(), 1, meta.size(), file_) != meta.size()) {
        ibl_throw("ERR_FILE_WRITE", "%s: write failed: %s", tmp_path_.c_str(), strerror(errno));
    }
}

void ibl_gguf_writer::write_tensor_data(const std::string & name, const void * data, size_t nbytes) {
    if (!file_) ibl_throw("ERR_INVALID_STATE", "write_tensor_data before begin");
    if (next_ >= order_.size()) ibl_throw("ERR_INVALID_STATE", "tensor '%s': all declared tensors are already written", name.c_str());
    if (order_[next_] != name) {
        ibl_throw("ERR_INVALID_STATE", "tensor '%s' written out of order (expected '%s')", name.c_str(), order_[next_].c_str());
    }
    const int64_t id = gguf_find_tensor(gguf_, name.c_str());
    const size_t want = gguf_get_tensor_size(gguf_, id);
    if (nbytes != want) {
        ibl_throw("ERR_INVALID_ARG", "tensor '%s': got %zu bytes of data, expected %zu", name.c_str(), nbytes, want);
    }
    if (written_ != gguf_get_tensor_offset(gguf_, id)) {
        ibl_throw("ERR_INVALID_STATE", "tensor '%s': offset mismatch", name.c_str());
    }
    // No file this writer produces holds NaN or infinity (in float values or block scales).
    if (!ggml_validate_row_data(gguf_get_tensor_type(gguf_, id), data, nbytes)) {
        ibl_throw("ERR_NON_FINITE", "tensor '%s' holds NaN or infinite values", name.c_str());
    }
    const size_t align  = gguf_get_alignment(gguf_);
    const size_t padded = GGML_PAD(nbytes, align);
    static const uint8_t zeros[64] = {0};
    bool ok = fwrite(data, 1, nbytes, file_) == nbytes;
    for (size_t pad = padded - nbytes; ok && pad > 0;) {
        const size_t n = pad < sizeof(zeros) ? pad : sizeof(zeros);
        ok = fwrite(zeros, 1, n, file_) == n;
        pad -= n;
    }
    if (!ok) ibl_throw("ERR_FILE_WRITE", "%s: write failed: %s", tmp_path_.c_str(), strerror(errno));
    written_ += padded;
    ++next_;
}

void ibl_gguf_writer::finish() {
    if (!file_) ibl_throw("ERR_INVALID_STATE", "finish before begin");
    if (next_ != order_.size()) {
        ibl_throw("ERR_INVALID_STATE", "%s: only %zu of %zu tensors were written (next: '%s')", path_.c_str(), next_,
                  order_.size(), order_[next_].c_str());
    }
    const bool ok = fflush(file_) == 0;
    fclose(file_);
    file_ = nullptr;
    if (!ok) {
        remove(tmp_path_.c_str());
        ibl_throw("ERR_FILE_WRITE", "%s: write failed: %s", tmp_path_.c_str(), strerror(errno));
    }
    if (rename(tmp_path_.c_str(), path_.c_str()) != 0) {
        remove(tmp_path_.c_str());
        ibl_throw("ERR_FILE_WRITE", "%s: cannot rename from %s: %s", path_.c_str(), tmp_path_.c_str(), strerror(errno));
    }
}
