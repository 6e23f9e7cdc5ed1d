#include "ibl_npy.h"
#include "ibl_error.h"

#include <cerrno>
#include <cstdio>
#include <cmath>
#include <cstring>

std::vector<uint8_t> ibl_read_file(const std::string & path, size_t max_bytes) {
    FILE * f = fopen(path.c_str(), "rb");
    if (!f) {
        if (errno == ENOENT) ibl_throw("ERR_FILE_NOT_FOUND", "%s: file not found", path.c_str());
        ibl_throw("ERR_FILE_READ", "%s: cannot open: %s", path.c_str(), strerror(errno));
    }
    std::vector<uint8_t> out;
    uint8_t buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (out.size() + n > max_bytes) {
            fclose(f);
            ibl_throw("ERR_FILE_TOO_LARGE", "%s: larger than %zu bytes", path.c_str(), max_bytes);
        }
        out.insert(out.end(), buf, buf + n);
    }
    const bool err = ferror(f) != 0;
    fclose(f);
    if (err) ibl_throw("ERR_FILE_READ", "%s: read error (is it a directory?)", path.c_str());
    return out;
}

int64_t ibl_npy::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

// Value of `key` in the header dict, e.g. 'descr': '<f4' → "<f4" (quotes stripped), 'shape': (2, 3) → "(2, 3)".
static std::string header_field(const std::string & h, const std::string & key, const std::string & what) {
    const size_t k = h.find("'" + key + "'");
    if (k == std::string::npos) ibl_throw("ERR_NPY_INVALID", "%s: .npy header has no '%s'", what.c_str(), key.c_str());
    size_t p = h.find(':', k);
    if (p == std::string::npos) ibl_throw("ERR_NPY_INVALID", "%s: malformed .npy header", what.c_str());
    ++p;
    while (p < h.size() && h[p] == ' ') ++p;
    if (p < h.size() && (h[p] == '\'' || h[p] == '"')) {
        const size_t e = h.find(h[p], p + 1);
        if (e == std::string::npos) ibl_throw("ERR_NPY_INVALID", "%s: malformed .npy header", what.c_str());
        return h.substr(p + 1, e - p - 1);
    }
    if (p < h.size() && h[p] == '(') {
        const size_t e = h.find(')', p);
        if (e == std::string::npos) ibl_throw("ERR_NPY_INVALID", "%s: malformed .npy header", what.c_str());
        return h.substr(p, e - p + 1);
    }
    size_t e = p;
    while (e < h.size() && h[e] != ',' && h[e] != '}') ++e;
    return h.substr(p, e - p);
}

static size_t dtype_size(const std::string & dt) {
    if (dt.size() < 2) return 0;
    const char k = dt[0];
    if (k != 'f' && k != 'i' && k != 'u' && k != 'b') return 0;
    const int n = atoi(dt.c_str() + 1);
    return n == 1 || n == 2 || n == 4 || n == 8 ? (size_t) n : 0;
}

ibl_npy ibl_npy_parse(const uint8_t * b, size_t size, const std::string & what) {
    static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (size < 10 || memcmp(b, magic, 6) != 0) ibl_throw("ERR_NPY_INVALID", "%s: not a .npy file (bad magic)", what.c_str());
    const int major = b[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = b[8] | (b[9] << 8);
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) ibl_throw("ERR_NPY_INVALID", "%s: truncated .npy header", what.c_str());
        hlen = b[8] | (b[9] << 8) | (b[10] << 16) | ((size_t) b[11] << 24);
        hstart = 12;
    } else {
        ibl_throw("ERR_NPY_INVALID", "%s: unsupported .npy version %d", what.c_str(), major);
    }
    if (hstart + hlen > size) ibl_throw("ERR_NPY_INVALID", "%s: truncated .npy header", what.c_str());
    const std::string h((const char *) b + hstart, hlen);

    ibl_npy out;
    std::string descr = header_field(h, "descr", what);
    if (!descr.empty() && (descr[0] == '<' || descr[0] == '|' || descr[0] == '=')) descr = descr.substr(1);
    else if (!descr.empty() && descr[0] == '>' && descr.size() > 1 && dtype_size(descr.substr(1)) > 1) {
        ibl_throw("ERR_NPY_INVALID", "%s: big-endian .npy arrays are not supported", what.c_str());
    } else if (!descr.empty() && descr[0] == '>') descr = descr.substr(1);
    out.dtype = descr;
    const size_t esz = dtype_size(descr);
    if (!esz) ibl_throw("ERR_NPY_INVALID", "%s: unsupported .npy dtype '%s'", what.c_str(), descr.c_str());
    if (header_field(h, "fortran_order", what).find("True") != std::string::npos) {
        ibl_throw("ERR_NPY_INVALID", "%s: Fortran-order .npy arrays are not supported", what.c_str());
    }
    const std::string shape = header_field(h, "shape", what);
    int64_t numel = 1;
    for (size_t i = 1; i < shape.size();) {
        while (i < shape.size() && (shape[i] == ' ' || shape[i] == ',')) ++i;
        if (i >= shape.size() || shape[i] == ')') break;
        char * end = nullptr;
        const long long d = strtoll(shape.c_str() + i, &end, 10);
        if (end == shape.c_str() + i || d < 0 || d > (1LL << 40)) ibl_throw("ERR_NPY_INVALID", "%s: bad .npy shape %s", what.c_str(), shape.c_str());
        out.shape.push_back(d);
        numel *= d;
        if (numel > (1LL << 40)) ibl_throw("ERR_NPY_INVALID", "%s: .npy array too large", what.c_str());
        i = end - shape.c_str();
    }
    const size_t nbytes = (size_t) numel * esz;
    const size_t dstart = hstart + hlen;
    if (size - dstart < nbytes) {
        ibl_throw("ERR_NPY_INVALID", "%s: truncated .npy data (%zu bytes, shape %s needs %zu)", what.c_str(), size - dstart, shape.c_str(), nbytes);
    }
    out.data.assign(b + dstart, b + dstart + nbytes);
    return out;
}

ibl_npy ibl_npy_load(const std::string & path) {
    const std::vector<uint8_t> bytes = ibl_read_file(path);
    return ibl_npy_parse(bytes.data(), bytes.size(), path);
}

template <typename T>
static void convert_all(const ibl_npy & a, T * out) {
    const int64_t n = a.numel();
    const uint8_t * p = a.data.data();
    const char k = a.dtype[0];
    const size_t sz = dtype_size(a.dtype);
    for (int64_t i = 0; i < n; ++i, p += sz) {
        double v = 0;
        if (k == 'f' && sz == 4) { float x; memcpy(&x, p, 4); v = x; }
        else if (k == 'f' && sz == 8) { double x; memcpy(&x, p, 8); v = x; }
        else if (k == 'f' && sz == 2) {
            uint16_t h; memcpy(&h, p, 2);
            const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
            const double s = (h & 0x8000) ? -1 : 1;
            v = e == 0 ? s * m * std::ldexp(1.0, -24) : e == 31 ? s * INFINITY : s * (1 + m / 1024.0) * std::ldexp(1.0, e - 15);
        }
        else if (k == 'i' || k == 'b') {
            int64_t x = 0;
            if (sz == 1) x = (int8_t) p[0];
            else if (sz == 2) { int16_t y; memcpy(&y, p, 2); x = y; }
            else if (sz == 4) { int32_t y; memcpy(&y, p, 4); x = y; }
            else { memcpy(&x, p, 8); }
            if (k == 'b') x = x != 0;
            out[i] = (T) x;
            continue;
        } else if (k == 'u') {
            uint64_t x = 0;
            if (sz == 1) x = p[0];
            else if (sz == 2) { uint16_t y; memcpy(&y, p, 2); x = y; }
            else if (sz == 4) { uint32_t y; memcpy(&y, p, 4); x = y; }
            else { memcpy(&x, p, 8); }
            out[i] = (T) x;
            continue;
        }
        out[i] = (T) v;
    }
}

std::vector<float> ibl_npy::to_f32() const {
    std::vector<float> out((size_t) numel());
    convert_all(*this, out.data());
    return out;
}

std::vector<int64_t> ibl_npy::to_i64() const {
    std::vector<int64_t> out((size_t) numel());
    convert_all(*this, out.data());
    return out;
}

void ibl_npy_save_f32(const std::string & path, const std::vector<int64_t> & shape, const float * data) {
    std::string sh = "(";
    int64_t n = 1;
    for (size_t i = 0; i < shape.size(); ++i) {
        sh += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
        if (i + 1 < shape.size()) sh += " ";
        n *= shape[i];
    }
    sh += ")";
    std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': " + sh + ", }";
    while ((10 + h.size() + 1) % 64 != 0) h += ' ';
    h += '\n';
    FILE * f = fopen(path.c_str(), "wb");
    if (!f) ibl_throw("ERR_FILE_WRITE", "%s: cannot create: %s", path.c_str(), strerror(errno));
    const uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t) (h.size() & 0xff), (uint8_t) (h.size() >> 8)};
    bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(h.data(), 1, h.size(), f) == h.size() &&
              fwrite(data, sizeof(float), (size_t) n, f) == (size_t) n;
    ok = fclose(f) == 0 && ok;
    if (!ok) ibl_throw("ERR_FILE_WRITE", "%s: write failed", path.c_str());
}
