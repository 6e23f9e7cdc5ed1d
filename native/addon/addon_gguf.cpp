// Bindings: GGUF inspector and writer (the writer is what tests and converters write GGUFs with).
#include "addon_util.h"
#include "ibl_gguf.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <unordered_map>

static Napi::Value u64_to_js(Napi::Env env, uint64_t v) {
    if (v <= (uint64_t(1) << 53)) return Napi::Number::New(env, (double) v);
    return Napi::BigInt::New(env, v);
}

static Napi::Value i64_to_js(Napi::Env env, int64_t v) {
    if (v <= (int64_t(1) << 53) && v >= -(int64_t(1) << 53)) return Napi::Number::New(env, (double) v);
    return Napi::BigInt::New(env, v);
}

static Napi::Value kv_value_to_js(Napi::Env env, const ibl_gguf_kv & kv) {
    const std::string & t = kv.is_array ? kv.elem_type : kv.type;
    auto element = [&](size_t i) -> Napi::Value {
        if (t == "string") return Napi::String::New(env, kv.str[i]);
        if (t == "bool") return Napi::Boolean::New(env, kv.i64[i] != 0);
        if (t == "f32" || t == "f64") return Napi::Number::New(env, kv.f64[i]);
        if (kv.is_signed) return i64_to_js(env, kv.i64[i]);
        return u64_to_js(env, kv.u64[i]);
    };
    if (!kv.is_array) return element(0);
    const size_t n = t == "string" ? kv.str.size() : (t == "f32" || t == "f64") ? kv.f64.size()
                   : kv.is_signed || t == "bool" ? kv.i64.size() : kv.u64.size();
    Napi::Array arr = Napi::Array::New(env, n);
    for (size_t i = 0; i < n; ++i) arr.Set(i, element(i));
    return arr;
}

static Napi::Value info_to_js(Napi::Env env, ibl_gguf_info & info) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("version", info.version);
    o.Set("alignment", Napi::Number::New(env, (double) info.alignment));
    o.Set("dataOffset", Napi::Number::New(env, (double) info.data_offset));
    o.Set("fileSize", Napi::Number::New(env, (double) info.file_size));
    Napi::Object meta = Napi::Object::New(env);
    Napi::Object types = Napi::Object::New(env);
    for (const auto & kv : info.kv) {
        meta.Set(kv.key, kv_value_to_js(env, kv));
        types.Set(kv.key, kv.is_array ? "array<" + kv.elem_type + ">" : kv.type);
    }
    o.Set("metadata", meta);
    o.Set("metadataTypes", types);
    Napi::Array tensors = Napi::Array::New(env, info.tensors.size());
    for (size_t i = 0; i < info.tensors.size(); ++i) {
        const auto & ti = info.tensors[i];
        Napi::Object ot = Napi::Object::New(env);
        ot.Set("name", ti.name);
        ot.Set("type", ti.type);
        Napi::Array shape = Napi::Array::New(env, ti.shape.size());
        for (size_t d = 0; d < ti.shape.size(); ++d) shape.Set(d, Napi::Number::New(env, (double) ti.shape[d]));
        ot.Set("shape", shape);
        ot.Set("offset", Napi::Number::New(env, (double) ti.offset));
        ot.Set("size", Napi::Number::New(env, (double) ti.size));
        tensors.Set(i, ot);
    }
    o.Set("tensors", tensors);
    return o;
}

static std::string arg_path(const Napi::CallbackInfo & info, size_t i, const char * fn) {
    if (info.Length() <= i || !info[i].IsString()) ibl_throw_type(info.Env(), std::string(fn) + ": expected a file path string");
    return info[i].As<Napi::String>().Utf8Value();
}

static Napi::Value js_gguf_inspect(const Napi::CallbackInfo & info) {
    const std::string path = arg_path(info, 0, "ggufInspect");
    return ibl_promise_worker<ibl_gguf_info>::start(info.Env(), "ibl.ggufInspect",
        [path] { return ibl_gguf_inspect(path); }, info_to_js);
}

// --- writer: the whole spec is copied into these structs before the worker starts ---------------

struct meta_entry {
    std::string key, type, elem_type;
    std::vector<double>      nums;  // numbers and bools
    std::vector<int64_t>     ints;  // exact integers (from BigInt or safe Numbers)
    std::vector<uint64_t>    uints;
    std::vector<std::string> strs;
};

struct tensor_entry {
    std::string          name;
    ggml_type            type;
    std::vector<int64_t> shape;
    std::vector<float>   f32;   // values to convert to `type`
    std::vector<uint8_t> raw;   // or raw bytes already in `type`
    bool                 is_raw = false;
};

struct write_spec {
    std::string               path;
    std::vector<meta_entry>   meta;
    std::vector<tensor_entry> tensors;
};

static bool is_int_type(const std::string & t) {
    return t == "u8" || t == "i8" || t == "u16" || t == "i16" || t == "u32" || t == "i32" || t == "u64" || t == "i64";
}

static void read_number(Napi::Env env, const std::string & key, const std::string & t, Napi::Value v, meta_entry & m) {
    if (t == "bool") {
        if (!v.IsBoolean()) ibl_throw_type(env, "metadata '" + key + "': expected a boolean");
        m.nums.push_back(v.As<Napi::Boolean>().Value() ? 1 : 0);
        return;
    }
    if (t == "f32" || t == "f64") {
        if (!v.IsNumber()) ibl_throw_type(env, "metadata '" + key + "': expected a number");
        m.nums.push_back(v.As<Napi::Number>().DoubleValue());
        return;
    }
    if (!is_int_type(t)) ibl_throw_type(env, "metadata '" + key + "': unknown type '" + t + "'");
    const bool is_unsigned = t[0] == 'u';
    if (v.IsBigInt()) {
        bool lossless = true;
        if (is_unsigned) m.uints.push_back(v.As<Napi::BigInt>().Uint64Value(&lossless));
        else m.ints.push_back(v.As<Napi::BigInt>().Int64Value(&lossless));
        if (!lossless) ibl_throw_type(env, "metadata '" + key + "': value out of range for " + t);
        return;
    }
    if (!v.IsNumber()) ibl_throw_type(env, "metadata '" + key + "': expected an integer");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || std::floor(d) != d) ibl_throw_type(env, "metadata '" + key + "': expected an integer");
    const int bits = std::stoi(t.substr(1));
    const double lo = is_unsigned ? 0 : -std::ldexp(1.0, bits - 1);
    const double hi = is_unsigned ? std::ldexp(1.0, bits) - 1 : std::ldexp(1.0, bits - 1) - 1;
    if (d < lo || d > hi) ibl_throw_type(env, "metadata '" + key + "': " + std::to_string(d) + " out of range for " + t);
    if (is_unsigned) m.uints.push_back((uint64_t) d);
    else m.ints.push_back((int64_t) d);
}

static void read_metadata(Napi::Env env, Napi::Value mv, std::vector<meta_entry> & out) {
    if (mv.IsUndefined()) return;
    if (!mv.IsArray()) ibl_throw_type(env, "metadata must be an array of {key, type, value}");
    Napi::Array ma = mv.As<Napi::Array>();
    for (uint32_t i = 0; i < ma.Length(); ++i) {
        Napi::Value ev = ma.Get(i);
        if (!ev.IsObject()) ibl_throw_type(env, "metadata entries must be objects");
        Napi::Object e = ev.As<Napi::Object>();
        meta_entry m;
        if (!e.Get("key").IsString() || !e.Get("type").IsString()) ibl_throw_type(env, "metadata entry needs string key and type");
        m.key  = e.Get("key").As<Napi::String>().Utf8Value();
        m.type = e.Get("type").As<Napi::String>().Utf8Value();
        Napi::Value v = e.Get("value");
        if (m.type == "string") {
            if (!v.IsString()) ibl_throw_type(env, "metadata '" + m.key + "': expected a string");
            m.strs.push_back(v.As<Napi::String>().Utf8Value());
        } else if (m.type == "array") {
            if (!e.Get("elemType").IsString() || !v.IsArray()) ibl_throw_type(env, "metadata '" + m.key + "': array needs elemType and an array value");
            m.elem_type = e.Get("elemType").As<Napi::String>().Utf8Value();
            Napi::Array va = v.As<Napi::Array>();
            for (uint32_t j = 0; j < va.Length(); ++j) {
                Napi::Value x = va.Get(j);
                if (m.elem_type == "string") {
                    if (!x.IsString()) ibl_throw_type(env, "metadata '" + m.key + "': expected strings");
                    m.strs.push_back(x.As<Napi::String>().Utf8Value());
                } else {
                    read_number(env, m.key, m.elem_type, x, m);
                }
            }
        } else {
            read_number(env, m.key, m.type, v, m);
        }
        out.push_back(std::move(m));
    }
}

static write_spec read_spec(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    write_spec spec;
    spec.path = arg_path(info, 0, "ggufWrite");
    if (info.Length() < 2 || !info[1].IsObject()) ibl_throw_type(env, "ggufWrite: expected a spec object");
    Napi::Object o = info[1].As<Napi::Object>();

    read_metadata(env, o.Get("metadata"), spec.meta);

    Napi::Value tv = o.Get("tensors");
    if (!tv.IsUndefined()) {
        if (!tv.IsArray()) ibl_throw_type(env, "ggufWrite: tensors must be an array of {name, type, shape, data}");
        Napi::Array ta = tv.As<Napi::Array>();
        for (uint32_t i = 0; i < ta.Length(); ++i) {
            Napi::Value ev = ta.Get(i);
            if (!ev.IsObject()) ibl_throw_type(env, "ggufWrite: tensor entries must be objects");
            Napi::Object e = ev.As<Napi::Object>();
            tensor_entry t;
            if (!e.Get("name").IsString()) ibl_throw_type(env, "ggufWrite: tensor needs a name");
            t.name = e.Get("name").As<Napi::String>().Utf8Value();
            const std::string type = e.Get("type").IsString() ? e.Get("type").As<Napi::String>().Utf8Value() : "f32";
            t.type = ibl_call_js(env, [&] { return ibl_ggml_type_from_name(type); });
            if (!e.Get("shape").IsArray()) ibl_throw_type(env, "tensor '" + t.name + "': shape must be an array");
            Napi::Array sa = e.Get("shape").As<Napi::Array>();
            int64_t n = 1;
            for (uint32_t d = 0; d < sa.Length(); ++d) {
                Napi::Value x = sa.Get(d);
                if (!x.IsNumber()) ibl_throw_type(env, "tensor '" + t.name + "': shape entries must be numbers");
                const double dv = x.As<Napi::Number>().DoubleValue();
                if (!(dv >= 1 && dv <= 1e12) || std::floor(dv) != dv) ibl_throw_type(env, "tensor '" + t.name + "': invalid dimension");
                t.shape.push_back((int64_t) dv);
                n *= (int64_t) dv;
            }
            Napi::Value data = e.Get("data");
            if (data.IsTypedArray() && data.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
                Napi::Float32Array fa = data.As<Napi::Float32Array>();
                if ((int64_t) fa.ElementLength() != n) {
                    ibl_throw_type(env, "tensor '" + t.name + "': data has " + std::to_string(fa.ElementLength()) +
                                        " values, shape needs " + std::to_string(n));
                }
                t.f32.assign(fa.Data(), fa.Data() + fa.ElementLength());
            } else if (data.IsTypedArray() && data.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
                Napi::Uint8Array ua = data.As<Napi::Uint8Array>();
                t.raw.assign(ua.Data(), ua.Data() + ua.ByteLength());
                t.is_raw = true;
            } else {
                ibl_throw_type(env, "tensor '" + t.name + "': data must be a Float32Array (values) or Uint8Array (raw bytes)");
            }
            spec.tensors.push_back(std::move(t));
        }
    }
    return spec;
}

static void set_meta(ibl_gguf_writer & w, const meta_entry & m) {
    const std::string & t = m.type == "array" ? m.elem_type : m.type;
    if (m.type == "string") return w.set_str(m.key, m.strs[0]);
    if (m.type == "array") {
        if (t == "string") return w.set_arr_str(m.key, m.strs);
        // Pack the elements into their on-disk width.
        std::vector<uint8_t> buf;
        auto push = [&](const void * p, size_t sz) { buf.insert(buf.end(), (const uint8_t *) p, (const uint8_t *) p + sz); };
        const size_t n = t == "bool" || t == "f32" || t == "f64" ? m.nums.size() : t[0] == 'u' ? m.uints.size() : m.ints.size();
        for (size_t i = 0; i < n; ++i) {
            if (t == "bool")      { int8_t v = m.nums[i] != 0; push(&v, 1); }
            else if (t == "f32")  { float v = (float) m.nums[i]; push(&v, 4); }
            else if (t == "f64")  { double v = m.nums[i]; push(&v, 8); }
            else if (t == "u8")   { uint8_t v = (uint8_t) m.uints[i]; push(&v, 1); }
            else if (t == "u16")  { uint16_t v = (uint16_t) m.uints[i]; push(&v, 2); }
            else if (t == "u32")  { uint32_t v = (uint32_t) m.uints[i]; push(&v, 4); }
            else if (t == "u64")  { uint64_t v = m.uints[i]; push(&v, 8); }
            else if (t == "i8")   { int8_t v = (int8_t) m.ints[i]; push(&v, 1); }
            else if (t == "i16")  { int16_t v = (int16_t) m.ints[i]; push(&v, 2); }
            else if (t == "i32")  { int32_t v = (int32_t) m.ints[i]; push(&v, 4); }
            else if (t == "i64")  { int64_t v = m.ints[i]; push(&v, 8); }
        }
        return w.set_arr_data(m.key, t, buf.data(), n);
    }
    if (t == "bool") return w.set_bool(m.key, m.nums[0] != 0);
    if (t == "f32") return w.set_f32(m.key, (float) m.nums[0]);
    if (t == "f64") return w.set_f64(m.key, m.nums[0]);
    if (t == "u8") return w.set_u8(m.key, (uint8_t) m.uints[0]);
    if (t == "u16") return w.set_u16(m.key, (uint16_t) m.uints[0]);
    if (t == "u32") return w.set_u32(m.key, (uint32_t) m.uints[0]);
    if (t == "u64") return w.set_u64(m.key, m.uints[0]);
    if (t == "i8") return w.set_i8(m.key, (int8_t) m.ints[0]);
    if (t == "i16") return w.set_i16(m.key, (int16_t) m.ints[0]);
    if (t == "i32") return w.set_i32(m.key, (int32_t) m.ints[0]);
    if (t == "i64") return w.set_i64(m.key, m.ints[0]);
}

static bool write_gguf(const write_spec & spec) {
    ibl_gguf_writer w;
    for (const auto & m : spec.meta) set_meta(w, m);
    for (const auto & t : spec.tensors) w.add_tensor(t.name, t.type, t.shape);
    w.begin(spec.path);
    for (const auto & t : spec.tensors) {
        if (t.is_raw) {
            w.write_tensor_data(t.name, t.raw.data(), t.raw.size());
        } else {
            const int64_t n_per_row = t.shape[0];
            const int64_t n_rows = (int64_t) t.f32.size() / n_per_row;
            const std::vector<uint8_t> bytes = ibl_convert_rows(t.type, t.f32.data(), n_rows, n_per_row);
            w.write_tensor_data(t.name, bytes.data(), bytes.size());
        }
    }
    w.finish();
    return true;
}

static Napi::Value js_gguf_write(const Napi::CallbackInfo & info) {
    auto spec = std::make_shared<write_spec>(read_spec(info));
    return ibl_promise_worker<bool>::start(info.Env(), "ibl.ggufWrite",
        [spec] { return write_gguf(*spec); },
        [](Napi::Env env, bool &) -> Napi::Value { return env.Undefined(); });
}


// --- streaming writer: what converters use, one tensor in memory at a time ----------------------

class GgufStreamWriter : public Napi::ObjectWrap<GgufStreamWriter> {
public:
    static Napi::Function define(Napi::Env env) {
        return DefineClass(env, "GgufStreamWriter", {
            InstanceMethod("setMetadata", &GgufStreamWriter::set_metadata),
            InstanceMethod("addTensor", &GgufStreamWriter::add_tensor),
            InstanceMethod("begin", &GgufStreamWriter::begin),
            InstanceMethod("writeTensor", &GgufStreamWriter::write_tensor),
            InstanceMethod("finish", &GgufStreamWriter::finish),
            InstanceMethod("dispose", &GgufStreamWriter::dispose),
        });
    }

    GgufStreamWriter(const Napi::CallbackInfo & info) : Napi::ObjectWrap<GgufStreamWriter>(info) {
        path_ = arg_path(info, 0, "GgufStreamWriter");
        writer_ = std::make_shared<ibl_gguf_writer>();
    }

private:
    struct declared { ggml_type type; std::vector<int64_t> shape; };

    ibl_gguf_writer & live(Napi::Env env) {
        if (!writer_) throw ibl_js_error(env, "ERR_INVALID_STATE", "GgufStreamWriter for " + path_ + " is disposed");
        if (busy_) throw ibl_js_error(env, "ERR_INVALID_STATE", "GgufStreamWriter: wait for the previous write to finish");
        return *writer_;
    }

    Napi::Value set_metadata(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        ibl_gguf_writer & w = live(env);
        std::vector<meta_entry> meta;
        read_metadata(env, info[0], meta);
        ibl_call_js(env, [&] { for (const auto & m : meta) set_meta(w, m); return 0; });
        return env.Undefined();
    }

    Napi::Value add_tensor(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        ibl_gguf_writer & w = live(env);
        if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsArray()) {
            ibl_throw_type(env, "addTensor(name, type, shape): expected a string, a type name and an array");
        }
        const std::string name = info[0].As<Napi::String>().Utf8Value();
        const std::string type_name = info[1].As<Napi::String>().Utf8Value();
        declared d;
        d.type = ibl_call_js(env, [&] { return ibl_ggml_type_from_name(type_name); });
        Napi::Array sa = info[2].As<Napi::Array>();
        for (uint32_t i = 0; i < sa.Length(); ++i) {
            Napi::Value x = sa.Get(i);
            if (!x.IsNumber()) ibl_throw_type(env, "tensor '" + name + "': shape entries must be numbers");
            const double v = x.As<Napi::Number>().DoubleValue();
            if (!(v >= 1 && v <= 1e12) || std::floor(v) != v) ibl_throw_type(env, "tensor '" + name + "': invalid dimension");
            d.shape.push_back((int64_t) v);
        }
        ibl_call_js(env, [&] { w.add_tensor(name, d.type, d.shape); return 0; });
        declared_[name] = d;
        return env.Undefined();
    }

    Napi::Value begin(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        ibl_gguf_writer & w = live(env);
        ibl_call_js(env, [&] { w.begin(path_); return 0; });
        return env.Undefined();
    }

    // writeTensor(name, data): Float32Array values (converted to the declared type off the JS thread)
    // or a Uint8Array of bytes already in that type. The array is referenced, not copied, until done.
    Napi::Value write_tensor(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        live(env);
        if (info.Length() < 2 || !info[0].IsString() || !info[1].IsTypedArray()) {
            ibl_throw_type(env, "writeTensor(name, data): expected a name and a Float32Array or Uint8Array");
        }
        const std::string name = info[0].As<Napi::String>().Utf8Value();
        auto it = declared_.find(name);
        if (it == declared_.end()) throw ibl_js_error(env, "ERR_INVALID_ARG", "tensor '" + name + "' was not declared");
        const declared d = it->second;
        Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
        const bool is_f32 = ta.TypedArrayType() == napi_float32_array;
        if (!is_f32 && ta.TypedArrayType() != napi_uint8_array) ibl_throw_type(env, "tensor '" + name + "': data must be a Float32Array or Uint8Array");
        int64_t n = 1;
        for (int64_t x : d.shape) n *= x;
        if (is_f32 && (int64_t) ta.ElementLength() != n) {
            ibl_throw_type(env, "tensor '" + name + "': data has " + std::to_string(ta.ElementLength()) + " values, shape needs " + std::to_string(n));
        }
        const uint8_t * data = (const uint8_t *) ta.ArrayBuffer().Data() + ta.ByteOffset();
        const size_t nbytes = ta.ByteLength();
        auto keep = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info[1].As<Napi::Object>()));
        auto writer = writer_;
        busy_ = true;
        Ref();
        return ibl_promise_worker<bool>::start(env, "ibl.ggufWriteTensor",
            [writer, name, d, is_f32, data, nbytes, n] {
                if (is_f32 && d.type != GGML_TYPE_F32) {
                    const std::vector<uint8_t> bytes = ibl_convert_rows(d.type, (const float *) data, n / d.shape[0], d.shape[0]);
                    writer->write_tensor_data(name, bytes.data(), bytes.size());
                } else {
                    writer->write_tensor_data(name, data, nbytes);
                }
                return true;
            },
            [this, keep](Napi::Env e, bool &) -> Napi::Value { busy_ = false; keep->Reset(); Unref(); return e.Undefined(); },
            [this, keep]() { busy_ = false; keep->Reset(); Unref(); });
    }

    Napi::Value finish(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        live(env);
        auto writer = writer_;
        busy_ = true;
        Ref();
        return ibl_promise_worker<bool>::start(env, "ibl.ggufFinish",
            [writer] { writer->finish(); return true; },
            [this](Napi::Env e, bool &) -> Napi::Value { busy_ = false; writer_.reset(); Unref(); return e.Undefined(); },
            [this]() { busy_ = false; Unref(); });
    }

    // Drops the writer; an unfinished file's partial output is deleted.
    Napi::Value dispose(const Napi::CallbackInfo & info) {
        if (busy_) throw ibl_js_error(info.Env(), "ERR_INVALID_STATE", "GgufStreamWriter: cannot dispose during a write");
        writer_.reset();
        return info.Env().Undefined();
    }

    std::string                                 path_;
    std::shared_ptr<ibl_gguf_writer>            writer_;
    std::unordered_map<std::string, declared>   declared_;
    bool                                        busy_ = false;
};

void ibl_init_gguf(Napi::Env env, Napi::Object exports) {
    exports.Set("GgufStreamWriter", GgufStreamWriter::define(env));
    exports.Set("ggufInspect", Napi::Function::New(env, js_gguf_inspect, "ggufInspect"));
    exports.Set("ggufWrite", Napi::Function::New(env, js_gguf_write, "ggufWrite"));
}
