#include "ibl_points.h"

#include "ibl_error.h"
#include "ibl_npy.h"

#include <algorithm>
#include <cctype>
#include <clocale>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>

using sv = std::string_view;

// ---------------------------------------------------------------------------------------------------------------
// Text helpers shared by the ASCII readers

// Lines of a text buffer ('\n' or "\r\n"), numbered from 1 for error messages.
struct text_lines {
    const char * p;
    const char * end;
    int64_t      lineno = 0;

    text_lines(const char * begin, const char * end, int64_t first_lineno = 0) : p(begin), end(end), lineno(first_lineno) {}

    bool next(sv & line) {
        if (p >= end) return false;
        const char * nl = (const char *) memchr(p, '\n', (size_t) (end - p));
        const char * stop = nl ? nl : end;
        line = sv(p, (size_t) (stop - p));
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        p = nl ? nl + 1 : end;
        ++lineno;
        return true;
    }
};

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'; }

static sv trim(sv s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

// Next token of `rest`, separated by whitespace (and commas when `comma`); runs of separators count as one.
static bool next_token(sv & rest, sv & tok, bool comma = false) {
    auto sep = [comma](char c) { return is_space(c) || (comma && c == ','); };
    size_t i = 0;
    while (i < rest.size() && sep(rest[i])) ++i;
    if (i == rest.size()) {
        rest = sv();
        return false;
    }
    size_t j = i;
    while (j < rest.size() && !sep(rest[j])) ++j;
    tok = rest.substr(i, j - i);
    rest.remove_prefix(j);
    return true;
}

static std::string quote(sv s) {
    std::string q(s.substr(0, 60));
    for (char & c : q) {
        if ((unsigned char) c < 0x20 || (unsigned char) c >= 0x7f) c = '?';
    }
    return "'" + q + (s.size() > 60 ? "...'" : "'");
}

// Decimal text → double, correctly rounded (numpy's float64 parsing gives the same double, and only then
// is it rounded to float32). Clinger's fast path covers what point files hold (≤ 19 digits, |exp| ≤ 22:
// one exact integer times one exact power of ten, a single IEEE rounding); anything else goes to strtod,
// with '.' swapped for the C locale's decimal point in case the host process called setlocale().
static bool parse_double(sv tok, double & out) {
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    if (tok.empty() || tok.size() > 200) return false;
    size_t i = 0;
    bool neg = false;
    if (tok[i] == '+' || tok[i] == '-') neg = tok[i++] == '-';
    uint64_t m = 0;
    int sig = 0, exp10 = 0;
    bool digits = false, fast = true;
    auto digit = [&](int d, bool frac) {
        digits = true;
        if (m == 0 && d == 0) {
            if (frac) --exp10;
            return;
        }
        if (sig >= 19) {
            fast = false;
            return;
        }
        m = m * 10 + (uint64_t) d;
        ++sig;
        if (frac) --exp10;
    };
    while (i < tok.size() && isdigit((unsigned char) tok[i])) digit(tok[i++] - '0', false);
    if (i < tok.size() && tok[i] == '.') {
        ++i;
        while (i < tok.size() && isdigit((unsigned char) tok[i])) digit(tok[i++] - '0', true);
    }
    if (digits && i < tok.size() && (tok[i] == 'e' || tok[i] == 'E')) {
        size_t k = i + 1;
        bool eneg = false;
        if (k < tok.size() && (tok[k] == '+' || tok[k] == '-')) eneg = tok[k++] == '-';
        int e = 0;
        const size_t kd = k;
        while (k < tok.size() && isdigit((unsigned char) tok[k])) e = std::min(e * 10 + (tok[k++] - '0'), 100000);
        if (k == kd) return false;
        exp10 += eneg ? -e : e;
        i = k;
    }
    if (digits && i == tok.size() && fast && m <= (uint64_t(1) << 53) && exp10 >= -22 && exp10 <= 22) {
        const double v = exp10 >= 0 ? (double) m * p10[exp10] : (double) m / p10[-exp10];
        out = neg ? -v : v;
        return true;
    }
    // Rare forms (long mantissas, large exponents, hex, inf, nan).
    char buf[256];
    const char dp = localeconv()->decimal_point[0];
    for (size_t k = 0; k < tok.size(); ++k) buf[k] = tok[k] == '.' ? dp : tok[k];
    buf[tok.size()] = 0;
    char * end = nullptr;
    out = strtod(buf, &end);
    return end == buf + tok.size();
}

static bool parse_u64(sv tok, uint64_t & out) {
    if (tok.empty() || tok.size() > 19) return false;  // 19 digits cannot overflow
    out = 0;
    for (char c : tok) {
        if (!isdigit((unsigned char) c)) return false;
        out = out * 10 + (uint64_t) (c - '0');
    }
    return true;
}

// Appends one point, rounding the float64 values to float32 like upstream's .float().
static void push_point(std::vector<float> & xyz, const double v[3], const std::string & what, const char * unit, int64_t at) {
    for (int k = 0; k < 3; ++k) {
        const float f = (float) v[k];
        if (!std::isfinite(f)) {
            ibl_throw("ERR_POINTS_INVALID", "%s: %s %lld: coordinate %c is %g (not a finite float32)", what.c_str(), unit,
                      (long long) at, "xyz"[k], v[k]);
        }
        xyz.push_back(f);
    }
}

static ibl_point_cloud finish(std::vector<float> && xyz, const std::string & what) {
    if (xyz.empty()) ibl_throw("ERR_POINTS_EMPTY", "%s: the point cloud has no points", what.c_str());
    ibl_point_cloud pc;
    pc.n = (int64_t) (xyz.size() / 3);
    pc.xyz = std::move(xyz);
    return pc;
}

// A text buffer without a UTF-8 byte order mark.
static sv text_of(const uint8_t * data, size_t size) {
    sv s((const char *) data, size);
    if (s.size() >= 3 && (uint8_t) s[0] == 0xEF && (uint8_t) s[1] == 0xBB && (uint8_t) s[2] == 0xBF) s.remove_prefix(3);
    return s;
}

// Binary scalars of PLY / PCD bodies.
enum scalar_type { T_NONE, T_I8, T_U8, T_I16, T_U16, T_I32, T_U32, T_I64, T_U64, T_F32, T_F64 };

static size_t scalar_size(scalar_type t) {
    switch (t) {
        case T_I8: case T_U8: return 1;
        case T_I16: case T_U16: return 2;
        case T_I32: case T_U32: case T_F32: return 4;
        case T_I64: case T_U64: case T_F64: return 8;
        default: return 0;
    }
}

static bool host_is_big_endian() {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 0;
}

static double read_scalar(const uint8_t * p, scalar_type t, bool swap) {
    uint8_t b[8];
    const size_t n = scalar_size(t);
    for (size_t k = 0; k < n; ++k) b[k] = swap ? p[n - 1 - k] : p[k];
    switch (t) {
        case T_I8: { int8_t v; memcpy(&v, b, 1); return v; }
        case T_U8: return b[0];
        case T_I16: { int16_t v; memcpy(&v, b, 2); return v; }
        case T_U16: { uint16_t v; memcpy(&v, b, 2); return v; }
        case T_I32: { int32_t v; memcpy(&v, b, 4); return v; }
        case T_U32: { uint32_t v; memcpy(&v, b, 4); return v; }
        case T_I64: { int64_t v; memcpy(&v, b, 8); return (double) v; }
        case T_U64: { uint64_t v; memcpy(&v, b, 8); return (double) v; }
        case T_F32: { float v; memcpy(&v, b, 4); return v; }
        case T_F64: { double v; memcpy(&v, b, 8); return v; }
        default: return 0;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// .npy: (N, 3), (1, N, 3) or (N, >=3), float32 / float64

static std::string shape_str(const std::vector<int64_t> & s) {
    std::string r = "(";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + (s.size() == 1 ? ",)" : ")");
}

static ibl_point_cloud parse_npy(const uint8_t * data, size_t size, const std::string & what) {
    const ibl_npy a = ibl_npy_parse(data, size, what);
    if (a.dtype != "f4" && a.dtype != "f8") {
        ibl_throw("ERR_POINTS_UNSUPPORTED", "%s: .npy dtype '%s' is not supported for points; expected float32 or float64",
                  what.c_str(), a.dtype.c_str());
    }
    std::vector<int64_t> s = a.shape;
    if (s.size() == 3 && s[0] == 1) s.erase(s.begin());
    if (s.size() != 2 || s[1] < 3) {
        ibl_throw("ERR_POINTS_UNSUPPORTED", "%s: .npy shape %s is not a point cloud; expected (N, 3), (1, N, 3) or (N, >=3)",
                  what.c_str(), shape_str(a.shape).c_str());
    }
    const int64_t n = s[0], cols = s[1];
    const size_t esz = a.dtype == "f4" ? 4 : 8;
    std::vector<float> xyz;
    xyz.reserve((size_t) n * 3);
    for (int64_t i = 0; i < n; ++i) {
        double v[3];
        for (int k = 0; k < 3; ++k) v[k] = read_scalar(a.data.data() + ((size_t) (i * cols + k)) * esz, esz == 4 ? T_F32 : T_F64, false);
        push_point(xyz, v, what, "point", i);
    }
    return finish(std::move(xyz), what);
}

// ---------------------------------------------------------------------------------------------------------------
// .ply: ascii / binary_little_endian / binary_big_endian, any scalar types, list properties, other elements
// ref: http://paulbourke.net/dataformats/ply/

struct ply_property {
    std::string name;
    scalar_type type       = T_NONE;
    scalar_type count_type = T_NONE;  // set for list properties
};

struct ply_element {
    std::string               name;
    uint64_t                  count = 0;
    std::vector<ply_property> props;
};

static scalar_type ply_type(sv name) {
    static const struct { const char * name; scalar_type t; } names[] = {
        {"char", T_I8},     {"int8", T_I8},     {"uchar", T_U8},   {"uint8", T_U8},     {"short", T_I16},
        {"int16", T_I16},   {"ushort", T_U16},  {"uint16", T_U16}, {"int", T_I32},      {"int32", T_I32},
        {"uint", T_U32},    {"uint32", T_U32},  {"float", T_F32},  {"float32", T_F32},  {"double", T_F64},
        {"float64", T_F64},
    };
    for (const auto & e : names) {
        if (name == e.name) return e.t;
    }
    return T_NONE;
}

static ibl_point_cloud parse_ply(const uint8_t * data, size_t size, const std::string & what) {
    const char * begin = (const char *) data;
    text_lines lines(begin, begin + size);
    sv line;
    if (!lines.next(line) || trim(line) != "ply") ibl_throw("ERR_POINTS_MALFORMED", "%s: not a PLY file (first line is not 'ply')", what.c_str());

    enum { ASCII, LE, BE, UNSET } format = UNSET;
    std::vector<ply_element> elems;
    bool ended = false;
    while (!ended && lines.next(line)) {
        sv rest = line, kw;
        if (!next_token(rest, kw)) continue;
        const long long ln = (long long) lines.lineno;
        std::vector<sv> tok;
        for (sv t; next_token(rest, t);) tok.push_back(t);
        if (kw == "comment" || kw == "obj_info") continue;
        if (kw == "end_header") {
            ended = true;
        } else if (kw == "format") {
            if (tok.empty()) ibl_throw("ERR_POINTS_MALFORMED", "%s: PLY header line %lld: 'format' without a value", what.c_str(), ln);
            if (tok[0] == "ascii") format = ASCII;
            else if (tok[0] == "binary_little_endian") format = LE;
            else if (tok[0] == "binary_big_endian") format = BE;
            else ibl_throw("ERR_POINTS_MALFORMED", "%s: PLY header line %lld: unknown format %s", what.c_str(), ln, quote(tok[0]).c_str());
        } else if (kw == "element") {
            ply_element e;
            if (tok.size() != 2 || !parse_u64(tok[1], e.count)) {
                ibl_throw("ERR_POINTS_MALFORMED", "%s: PLY header line %lld: expected 'element <name> <count>', got %s", what.c_str(), ln,
                          quote(line).c_str());
            }
            e.name = std::string(tok[0]);
            elems.push_back(std::move(e));
        } else if (kw == "property") {
            if (elems.empty()) ibl_throw("ERR_POINTS_MALFORMED", "%s: PLY header line %lld: property before any element", what.c_str(), ln);
            ply_property p;
            const bool list = !tok.empty() && tok[0] == "list";
            if (list ? tok.size() != 4 : tok.size() != 2) {
                ibl_throw("ERR_POINTS_MALFORMED", "%s: PLY header line %lld: expected 'property <type> <name>' or 'property list <type> <type> <name>', got %s",
                          what.c_str(), ln, quote(line).c_str());
            }
            const sv type_name = list ? tok[2] : tok[0];
            p.type = ply_type(type_name);
            if (list) p.count_type = ply_type(tok[1]);
            if (p.type == T_NONE || (list && p.count_type == T_NONE)) {
                ibl_throw("ERR_POINTS_MALFORMED", "%s: PLY header line %lld: unknown property type in %s", what.c_str(), ln, quote(line).c_str());
            }
            p.name = std::string(tok.back());
            elems.back().props.push_back(std::move(p));
        } else {
            ibl_throw("ERR_POINTS_MALFORMED", "%s: PLY header line %lld: unknown keyword %s", what.c_str(), ln, quote(kw).c_str());
        }
    }
    if (!ended) ibl_throw("ERR_POINTS_MALFORMED", "%s: PLY header has no 'end_header' line", what.c_str());
    if (format == UNSET) ibl_throw("ERR_POINTS_MALFORMED", "%s: PLY header has no 'format' line", what.c_str());

    size_t iv = elems.size();
    for (size_t i = 0; i < elems.size(); ++i) {
        if (elems[i].name == "vertex") {
            iv = i;
            break;
        }
    }
    if (iv == elems.size()) ibl_throw("ERR_POINTS_MALFORMED", "%s: PLY has no 'vertex' element", what.c_str());
    int pxyz[3] = {-1, -1, -1};
    for (size_t k = 0; k < elems[iv].props.size(); ++k) {
        const ply_property & p = elems[iv].props[k];
        for (int c = 0; c < 3; ++c) {
            if (pxyz[c] < 0 && p.name == std::string(1, "xyz"[c]) && p.count_type == T_NONE) pxyz[c] = (int) k;
        }
    }
    for (int c = 0; c < 3; ++c) {
        if (pxyz[c] < 0) ibl_throw("ERR_POINTS_MALFORMED", "%s: PLY vertex element has no scalar property '%c'", what.c_str(), "xyz"[c]);
    }
    if (elems[iv].count == 0) ibl_throw("ERR_POINTS_EMPTY", "%s: PLY has 0 vertices", what.c_str());

    const size_t body = (size_t) (lines.p - begin);
    std::vector<float> xyz;
    // Only the elements up to the vertex element are read; faces etc. after it are ignored.
    if (format == ASCII) {
        for (size_t ie = 0; ie <= iv; ++ie) {
            const ply_element & e = elems[ie];
            if (e.props.empty()) continue;
            // Every element is a line of at least one value: "0\n".
            if (e.count > (size - body) / 2 + 1) {
                ibl_throw("ERR_POINTS_MALFORMED", "%s: PLY header claims %llu '%s' elements but only %zu bytes follow the header",
                          what.c_str(), (unsigned long long) e.count, e.name.c_str(), size - body);
            }
            if (ie == iv) xyz.reserve((size_t) e.count * 3);
            for (uint64_t r = 0; r < e.count; ++r) {
                do {
                    if (!lines.next(line)) {
                        ibl_throw("ERR_POINTS_MALFORMED", "%s: truncated ASCII PLY: header declares %llu '%s' lines, the file ends after %llu",
                                  what.c_str(), (unsigned long long) e.count, e.name.c_str(), (unsigned long long) r);
                    }
                } while (trim(line).empty());
                const long long ln = (long long) lines.lineno;
                sv rest = line, tok;
                double v[3] = {0, 0, 0};
                for (size_t k = 0; k < e.props.size(); ++k) {
                    const ply_property & p = e.props[k];
                    if (!next_token(rest, tok)) {
                        ibl_throw("ERR_POINTS_MALFORMED", "%s: line %lld: too few values for the '%s' element (missing '%s')",
                                  what.c_str(), ln, e.name.c_str(), p.name.c_str());
                    }
                    double val;
                    if (!parse_double(tok, val)) {
                        ibl_throw("ERR_POINTS_MALFORMED", "%s: line %lld: %s is not a number", what.c_str(), ln, quote(tok).c_str());
                    }
                    if (p.count_type != T_NONE) {
                        if (val < 0 || val != std::floor(val) || val > 1e9) {
                            ibl_throw("ERR_POINTS_MALFORMED", "%s: line %lld: bad list length %s", what.c_str(), ln, quote(tok).c_str());
                        }
                        for (uint64_t j = 0; j < (uint64_t) val; ++j) {
                            if (!next_token(rest, tok)) {
                                ibl_throw("ERR_POINTS_MALFORMED", "%s: line %lld: list '%s' is shorter than its length", what.c_str(), ln, p.name.c_str());
                            }
                        }
                        continue;
                    }
                    if (ie == iv) {
                        for (int c = 0; c < 3; ++c) {
                            if ((int) k == pxyz[c]) v[c] = val;
                        }
                    }
                }
                if (next_token(rest, tok)) {
                    ibl_throw("ERR_POINTS_MALFORMED", "%s: line %lld: more values than the '%s' element's %zu properties",
                              what.c_str(), ln, e.name.c_str(), e.props.size());
                }
                if (ie == iv) push_point(xyz, v, what, "line", ln);
            }
        }
        return finish(std::move(xyz), what);
    }

    const bool swap = (format == BE) != host_is_big_endian();
    size_t pos = body;
    for (size_t ie = 0; ie <= iv; ++ie) {
        const ply_element & e = elems[ie];
        size_t min_bytes = 0;  // per element; lists count only their length field
        for (const ply_property & p : e.props) min_bytes += scalar_size(p.count_type != T_NONE ? p.count_type : p.type);
        if (min_bytes == 0) continue;
        // Checked before allocating: a header may claim billions of elements.
        if (e.count > (size - pos) / min_bytes) {
            ibl_throw("ERR_POINTS_MALFORMED", "%s: truncated binary PLY: header claims %llu '%s' elements (at least %llu bytes), only %zu bytes follow",
                      what.c_str(), (unsigned long long) e.count, e.name.c_str(),
                      (unsigned long long) e.count * (unsigned long long) min_bytes, size - pos);
        }
        if (ie == iv) xyz.reserve((size_t) e.count * 3);
        for (uint64_t r = 0; r < e.count; ++r) {
            auto truncated = [&]() {
                ibl_throw("ERR_POINTS_MALFORMED", "%s: truncated binary PLY body in '%s' element %llu of %llu", what.c_str(), e.name.c_str(),
                          (unsigned long long) r, (unsigned long long) e.count);
            };
            double v[3] = {0, 0, 0};
            for (size_t k = 0; k < e.props.size(); ++k) {
                const ply_property & p = e.props[k];
                const bool list = p.count_type != T_NONE;
                const size_t sz = scalar_size(list ? p.count_type : p.type);
                if (size - pos < sz) truncated();
                const double val = read_scalar(data + pos, list ? p.count_type : p.type, swap);
                pos += sz;
                if (list) {
                    if (val < 0 || val != std::floor(val)) {
                        ibl_throw("ERR_POINTS_MALFORMED", "%s: binary PLY '%s' element %llu: bad list length %g", what.c_str(), e.name.c_str(),
                                  (unsigned long long) r, val);
                    }
                    if (val > (double) ((size - pos) / scalar_size(p.type))) truncated();
                    pos += (size_t) val * scalar_size(p.type);
                } else if (ie == iv) {
                    for (int c = 0; c < 3; ++c) {
                        if ((int) k == pxyz[c]) v[c] = val;
                    }
                }
            }
            if (ie == iv) push_point(xyz, v, what, "vertex", (int64_t) r);
        }
    }
    return finish(std::move(xyz), what);
}

// ---------------------------------------------------------------------------------------------------------------
// .xyz / .pts / .txt / .csv: "x y z [...]" per line (whitespace or commas); .pts may open with a count line

static ibl_point_cloud parse_xyz(const uint8_t * data, size_t size, const std::string & what, bool allow_count) {
    const sv text = text_of(data, size);
    text_lines lines(text.data(), text.data() + text.size());
    std::vector<float> xyz;
    bool first = true;
    sv line;
    while (lines.next(line)) {
        const sv t = trim(line);
        if (t.empty() || t[0] == '#') continue;
        const long long ln = (long long) lines.lineno;
        sv rest = t, tok[3];
        int nt = 0;
        while (nt < 3 && next_token(rest, tok[nt], true)) ++nt;
        const bool was_first = first;
        first = false;
        uint64_t count;
        if (was_first && allow_count && nt == 1 && parse_u64(tok[0], count)) continue;  // the point count of a .pts
        double v[3];
        int ok = 0;
        for (int k = 0; k < nt; ++k) ok += parse_double(tok[k], v[k]) ? 1 : 0;
        if (was_first && nt == 3 && ok == 0) continue;  // a column header such as "x,y,z,r,g,b"
        if (nt < 3) ibl_throw("ERR_POINTS_MALFORMED", "%s: line %lld: expected 'x y z', got %s", what.c_str(), ln, quote(t).c_str());
        for (int k = 0; k < 3; ++k) {
            if (!parse_double(tok[k], v[k])) {
                ibl_throw("ERR_POINTS_MALFORMED", "%s: line %lld: %s is not a number", what.c_str(), ln, quote(tok[k]).c_str());
            }
        }
        push_point(xyz, v, what, "line", ln);
    }
    return finish(std::move(xyz), what);
}

// ---------------------------------------------------------------------------------------------------------------
// .obj: only "v x y z [w]" lines (colour extensions ignored)

static ibl_point_cloud parse_obj(const uint8_t * data, size_t size, const std::string & what) {
    const sv text = text_of(data, size);
    text_lines lines(text.data(), text.data() + text.size());
    std::vector<float> xyz;
    sv line;
    while (lines.next(line)) {
        sv rest = trim(line), kw;
        if (!next_token(rest, kw) || kw != "v") continue;
        const long long ln = (long long) lines.lineno;
        double v[3];
        sv tok;
        for (int k = 0; k < 3; ++k) {
            if (!next_token(rest, tok)) ibl_throw("ERR_POINTS_MALFORMED", "%s: line %lld: expected 'v x y z', got %s", what.c_str(), ln, quote(trim(line)).c_str());
            if (!parse_double(tok, v[k])) ibl_throw("ERR_POINTS_MALFORMED", "%s: line %lld: %s is not a number", what.c_str(), ln, quote(tok).c_str());
        }
        push_point(xyz, v, what, "line", ln);
    }
    return finish(std::move(xyz), what);
}

// ---------------------------------------------------------------------------------------------------------------
// .pcd: header (FIELDS SIZE TYPE COUNT WIDTH HEIGHT POINTS DATA), DATA ascii or binary
// ref: https://pointclouds.org/documentation/tutorials/pcd_file_format.html

static ibl_point_cloud parse_pcd(const uint8_t * data, size_t size, const std::string & what) {
    const char * begin = (const char *) data;
    text_lines lines(begin, begin + size);
    std::vector<std::string> fields;
    std::vector<uint64_t> sizes, counts;
    std::vector<char> types;
    uint64_t width = 0, height = 1, points = 0;
    bool has_points = false, has_width = false;
    std::string mode;
    int64_t ln_sizes = 0, ln_types = 0, ln_counts = 0;
    sv line;
    while (mode.empty() && lines.next(line)) {
        sv rest = trim(line), kw;
        if (rest.empty() || rest[0] == '#' || !next_token(rest, kw)) continue;
        const long long ln = (long long) lines.lineno;
        std::vector<sv> tok;
        for (sv t; next_token(rest, t);) tok.push_back(t);
        auto numbers = [&](std::vector<uint64_t> & out) {
            out.clear();
            for (sv t : tok) {
                uint64_t v;
                if (!parse_u64(t, v)) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD header line %lld: %s is not a count", what.c_str(), ln, quote(t).c_str());
                out.push_back(v);
            }
        };
        auto one_number = [&]() {
            std::vector<uint64_t> v;
            numbers(v);
            if (v.size() != 1) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD header line %lld: expected one number in %s", what.c_str(), ln, quote(line).c_str());
            return v[0];
        };
        if (kw == "VERSION" || kw == "VIEWPOINT") continue;
        if (kw == "FIELDS" || kw == "COLUMNS") {
            fields.assign(tok.begin(), tok.end());
        } else if (kw == "SIZE") {
            numbers(sizes);
            ln_sizes = ln;
        } else if (kw == "COUNT") {
            numbers(counts);
            ln_counts = ln;
        } else if (kw == "TYPE") {
            types.clear();
            for (sv t : tok) {
                if (t.size() != 1 || (t[0] != 'F' && t[0] != 'I' && t[0] != 'U')) {
                    ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD header line %lld: unknown TYPE %s", what.c_str(), ln, quote(t).c_str());
                }
                types.push_back(t[0]);
            }
            ln_types = ln;
        } else if (kw == "WIDTH") {
            width = one_number();
            has_width = true;
        } else if (kw == "HEIGHT") {
            height = one_number();
        } else if (kw == "POINTS") {
            points = one_number();
            has_points = true;
        } else if (kw == "DATA") {
            if (tok.size() != 1) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD header line %lld: expected 'DATA ascii|binary'", what.c_str(), ln);
            mode = std::string(tok[0]);
            if (mode == "binary_compressed") {
                ibl_throw("ERR_POINTS_UNSUPPORTED", "%s: PCD 'DATA binary_compressed' (LZF) is not supported; save it as ascii or binary", what.c_str());
            }
            if (mode != "ascii" && mode != "binary") {
                ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD header line %lld: unknown DATA %s", what.c_str(), ln, quote(tok[0]).c_str());
            }
        } else {
            ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD header line %lld: unknown keyword %s", what.c_str(), ln, quote(kw).c_str());
        }
    }
    if (mode.empty()) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD header has no DATA line", what.c_str());
    if (fields.empty()) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD header has no FIELDS line", what.c_str());
    const size_t nf = fields.size();
    if (counts.empty()) counts.assign(nf, 1);
    if (counts.size() != nf) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD header line %lld: COUNT has %zu entries for %zu FIELDS", what.c_str(), (long long) ln_counts, counts.size(), nf);
    if (!has_points) {
        if (!has_width) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD header has neither POINTS nor WIDTH", what.c_str());
        if (height && width > UINT64_MAX / height) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD WIDTH x HEIGHT overflows", what.c_str());
        points = width * height;
    }
    // Value offsets of x, y, z within a point (in values for ascii, in bytes for binary).
    int fxyz[3] = {-1, -1, -1};
    for (size_t i = 0; i < nf; ++i) {
        for (int c = 0; c < 3; ++c) {
            if (fxyz[c] < 0 && fields[i] == std::string(1, "xyz"[c])) fxyz[c] = (int) i;
        }
    }
    for (int c = 0; c < 3; ++c) {
        if (fxyz[c] < 0) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD FIELDS has no '%c'", what.c_str(), "xyz"[c]);
        if (counts[fxyz[c]] == 0) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD field '%c' has COUNT 0", what.c_str(), "xyz"[c]);
    }
    if (points == 0) ibl_throw("ERR_POINTS_EMPTY", "%s: PCD has 0 points", what.c_str());
    const size_t body = (size_t) (lines.p - begin);
    std::vector<float> xyz;

    if (mode == "ascii") {
        uint64_t values = 0, at[3] = {0, 0, 0};
        for (size_t i = 0; i < nf; ++i) {
            for (int c = 0; c < 3; ++c) {
                if ((int) i == fxyz[c]) at[c] = values;
            }
            if (counts[i] > 1000000) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD COUNT %llu is too large", what.c_str(), (unsigned long long) counts[i]);
            values += counts[i];
        }
        if (points > (size - body) / 2 + 1) {
            ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD header claims %llu points but only %zu bytes follow the header", what.c_str(),
                      (unsigned long long) points, size - body);
        }
        xyz.reserve((size_t) points * 3);
        for (uint64_t r = 0; r < points; ++r) {
            do {
                if (!lines.next(line)) {
                    ibl_throw("ERR_POINTS_MALFORMED", "%s: truncated ASCII PCD: POINTS %llu, the file ends after %llu", what.c_str(),
                              (unsigned long long) points, (unsigned long long) r);
                }
            } while (trim(line).empty());
            const long long ln = (long long) lines.lineno;
            sv rest = line, tok;
            double v[3] = {0, 0, 0};
            for (uint64_t j = 0; j < values; ++j) {
                if (!next_token(rest, tok)) {
                    ibl_throw("ERR_POINTS_MALFORMED", "%s: line %lld: %llu values, FIELDS/COUNT declare %llu", what.c_str(), ln,
                              (unsigned long long) j, (unsigned long long) values);
                }
                for (int c = 0; c < 3; ++c) {
                    if (j == at[c] && !parse_double(tok, v[c])) {
                        ibl_throw("ERR_POINTS_MALFORMED", "%s: line %lld: %s is not a number", what.c_str(), ln, quote(tok).c_str());
                    }
                }
            }
            push_point(xyz, v, what, "line", ln);
        }
        return finish(std::move(xyz), what);
    }

    // binary: point-major records of the fields in order, little endian (PCL writes host order)
    if (sizes.size() != nf) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD header line %lld: SIZE has %zu entries for %zu FIELDS", what.c_str(), (long long) ln_sizes, sizes.size(), nf);
    if (types.size() != nf) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD header line %lld: TYPE has %zu entries for %zu FIELDS", what.c_str(), (long long) ln_types, types.size(), nf);
    uint64_t stride = 0, off[3] = {0, 0, 0};
    scalar_type st[3] = {T_NONE, T_NONE, T_NONE};
    for (size_t i = 0; i < nf; ++i) {
        scalar_type t = T_NONE;
        const uint64_t s = sizes[i];
        if (types[i] == 'F') t = s == 4 ? T_F32 : s == 8 ? T_F64 : T_NONE;
        if (types[i] == 'I') t = s == 1 ? T_I8 : s == 2 ? T_I16 : s == 4 ? T_I32 : s == 8 ? T_I64 : T_NONE;
        if (types[i] == 'U') t = s == 1 ? T_U8 : s == 2 ? T_U16 : s == 4 ? T_U32 : s == 8 ? T_U64 : T_NONE;
        if (t == T_NONE) {
            ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD field '%s' has TYPE %c with SIZE %llu", what.c_str(), fields[i].c_str(), types[i],
                      (unsigned long long) s);
        }
        for (int c = 0; c < 3; ++c) {
            if ((int) i == fxyz[c]) {
                off[c] = stride;
                st[c] = t;
            }
        }
        if (counts[i] > 1000000) ibl_throw("ERR_POINTS_MALFORMED", "%s: PCD COUNT %llu is too large", what.c_str(), (unsigned long long) counts[i]);
        stride += s * counts[i];
    }
    if (points > (size - body) / stride) {
        ibl_throw("ERR_POINTS_MALFORMED", "%s: truncated binary PCD: POINTS %llu needs %llu bytes, only %zu follow the header", what.c_str(),
                  (unsigned long long) points, (unsigned long long) (points * stride), size - body);
    }
    const bool swap = host_is_big_endian();
    xyz.reserve((size_t) points * 3);
    for (uint64_t r = 0; r < points; ++r) {
        const uint8_t * p = data + body + r * stride;
        const double v[3] = {read_scalar(p + off[0], st[0], swap), read_scalar(p + off[1], st[1], swap), read_scalar(p + off[2], st[2], swap)};
        push_point(xyz, v, what, "point", (int64_t) r);
    }
    return finish(std::move(xyz), what);
}

// ---------------------------------------------------------------------------------------------------------------
// Format detection and entry points

static std::string lower(std::string s) {
    for (char & c : s) c = (char) tolower((unsigned char) c);
    return s;
}

static std::string extension_of(const std::string & what) {
    const size_t slash = what.find_last_of("/\\");
    const std::string base = slash == std::string::npos ? what : what.substr(slash + 1);
    const size_t dot = base.rfind('.');
    return dot == std::string::npos || dot == 0 ? "" : lower(base.substr(dot + 1));
}

static bool known_format(const std::string & f) {
    static const char * formats[] = {"npy", "ply", "xyz", "pts", "txt", "csv", "obj", "pcd"};
    for (const char * k : formats) {
        if (f == k) return true;
    }
    return false;
}

// The format from the first bytes: npy / ply / pcd magic, OBJ keywords, or numeric text; "" when unsure.
static std::string sniff(const uint8_t * data, size_t size) {
    if (size >= 6 && memcmp(data, "\x93NUMPY", 6) == 0) return "npy";
    const sv head = text_of(data, std::min(size, (size_t) 65536));
    if (head.size() >= 4 && head.substr(0, 3) == "ply" && (head[3] == '\n' || head[3] == '\r')) return "ply";
    text_lines lines(head.data(), head.data() + head.size());
    sv line;
    bool header = false;
    while (lines.next(line)) {
        sv t = trim(line);
        if (memchr(t.data(), 0, t.size())) return "";  // binary, and not a known magic
        if (t.substr(0, 6) == "# .PCD") return "pcd";
        if (t.empty() || t[0] == '#') continue;
        sv rest = t, tok;
        next_token(rest, tok);
        if (tok == "VERSION" || tok == "FIELDS") return "pcd";
        static const char * obj_kw[] = {"v", "vn", "vt", "vp", "f", "o", "g", "s", "l", "p", "mtllib", "usemtl"};
        for (const char * k : obj_kw) {
            if (tok == k) return "obj";
        }
        rest = t;
        sv toks[3];
        int nt = 0;
        double v;
        while (nt < 3 && next_token(rest, toks[nt], true)) ++nt;
        int numeric = 0;
        for (int k = 0; k < nt; ++k) numeric += parse_double(toks[k], v) ? 1 : 0;
        if (nt == 3 && numeric == 0 && !header) {  // a column header such as "x,y,z,nx,ny,nz"
            header = true;
            continue;
        }
        return (nt == 3 && numeric == 3) || (nt == 1 && numeric == 1 && !header) ? "pts" : "";
    }
    return "";
}

ibl_point_cloud ibl_points_parse(const uint8_t * data, size_t size, const std::string & what, const std::string & format) {
    std::string f = lower(format);
    if (!f.empty() && f[0] == '.') f.erase(0, 1);
    if (!f.empty() && !known_format(f)) {
        ibl_throw("ERR_POINTS_FORMAT", "%s: unknown point cloud format '%s'; expected npy, ply, xyz, pts, txt, csv, obj or pcd", what.c_str(),
                  format.c_str());
    }
    if (size == 0 || data == nullptr) ibl_throw("ERR_POINTS_EMPTY", "%s: the point cloud file is empty", what.c_str());
    const std::string ext = extension_of(what);
    if (f.empty()) f = known_format(ext) ? ext : sniff(data, size);
    if (f.empty()) {
        ibl_throw("ERR_POINTS_FORMAT", "%s: unknown point cloud format%s; expected .npy, .ply, .xyz, .pts, .txt, .csv, .obj or .pcd",
                  what.c_str(), ext.empty() ? "" : (" (extension '." + ext + "')").c_str());
    }
    if (f == "npy") return parse_npy(data, size, what);
    if (f == "ply") return parse_ply(data, size, what);
    if (f == "obj") return parse_obj(data, size, what);
    if (f == "pcd") return parse_pcd(data, size, what);
    return parse_xyz(data, size, what, f == "pts");
}

ibl_point_cloud ibl_points_load(const std::string & path, const std::string & format) {
    const std::vector<uint8_t> bytes = ibl_read_file(path);
    return ibl_points_parse(bytes.data(), bytes.size(), path, format);
}

// ---------------------------------------------------------------------------------------------------------------
// Grouping: farthest point sampling + kNN
// ref: ImageBind-LLM pointbert point_encoder.py Group.forward, farthest_point_sample, square_distance, knn_point

// Fused multiply-add would change the float32 roundings that decide ties against the reference.
#if defined(__clang__)
#define IBL_NO_FP_CONTRACT
#define IBL_NO_FP_CONTRACT_BODY _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define IBL_NO_FP_CONTRACT __attribute__((optimize("fp-contract=off")))
#define IBL_NO_FP_CONTRACT_BODY
#else
#define IBL_NO_FP_CONTRACT
#define IBL_NO_FP_CONTRACT_BODY
#endif

// distance = 1e10; farthest = 0; repeat: centroid = xyz[farthest]; dist = Σ(xyz - centroid)²;
// distance = min(distance, dist); farthest = argmax(distance) (first index of the maximum).
IBL_NO_FP_CONTRACT static void fps(const float * xyz, int64_t n, int num_group, int64_t * out) {
    IBL_NO_FP_CONTRACT_BODY
    std::vector<float> dist((size_t) n, 1e10f);
    int64_t farthest = 0;
    for (int g = 0; g < num_group; ++g) {
        out[g] = farthest;
        if (g + 1 == num_group) break;
        const float cx = xyz[3 * farthest], cy = xyz[3 * farthest + 1], cz = xyz[3 * farthest + 2];
        float best = -1.0f;
        int64_t arg = 0;
        for (int64_t j = 0; j < n; ++j) {
            const float dx = xyz[3 * j] - cx, dy = xyz[3 * j + 1] - cy, dz = xyz[3 * j + 2] - cz;
            const float d = dx * dx + dy * dy + dz * dz;
            if (d < dist[j]) dist[j] = d;
            if (dist[j] > best) {
                best = dist[j];
                arg = j;
            }
        }
        farthest = arg;
    }
}

// Sort key of (distance, index): float bits mapped to an order-preserving unsigned integer, index below.
static inline uint64_t knn_key(float d, uint32_t j) {
    d += 0.0f;  // -0 → +0 so that it ties with +0
    uint32_t u;
    memcpy(&u, &d, 4);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((uint64_t) u << 32) | j;
}

// square_distance: dist = -2·(c·p); dist += |c|²; dist += |p|² (float32, that order).
// knn_point: topk(group_size, largest=False) — here the group_size smallest, nearest first, ties by index.
IBL_NO_FP_CONTRACT static void knn(const float * xyz, int64_t n, const int64_t * centers, int num_group, int group_size, int64_t * out) {
    IBL_NO_FP_CONTRACT_BODY
    std::vector<float> pp((size_t) n);
    for (int64_t j = 0; j < n; ++j) {
        const float x = xyz[3 * j], y = xyz[3 * j + 1], z = xyz[3 * j + 2];
        pp[j] = x * x + y * y + z * z;
    }
    std::vector<uint64_t> keys((size_t) n);
    for (int g = 0; g < num_group; ++g) {
        const float * c = xyz + 3 * centers[g];
        const float cc = c[0] * c[0] + c[1] * c[1] + c[2] * c[2];
        for (int64_t j = 0; j < n; ++j) {
            const float dot = c[0] * xyz[3 * j] + c[1] * xyz[3 * j + 1] + c[2] * xyz[3 * j + 2];
            float d = -2.0f * dot;
            d += cc;
            d += pp[j];
            keys[j] = knn_key(d, (uint32_t) j);
        }
        // Partial selection: O(N) per centre, then only the K winners are sorted.
        if (group_size < n) std::nth_element(keys.begin(), keys.begin() + group_size, keys.end());
        std::sort(keys.begin(), keys.begin() + group_size);
        for (int k = 0; k < group_size; ++k) out[(size_t) g * group_size + k] = (int64_t) (keys[k] & 0xffffffffu);
    }
}

ibl_point_groups ibl_points_group(const float * xyz, int64_t n, int num_group, int group_size) {
    if (num_group < 1 || group_size < 1) {
        ibl_throw("ERR_INVALID_ARGUMENT", "point grouping: num_group (%d) and group_size (%d) must be at least 1", num_group, group_size);
    }
    if (n < std::max(num_group, group_size)) {
        ibl_throw("ERR_POINTS_TOO_FEW", "point cloud has %lld points; Point-Bind needs at least %d (num_group %d, group_size %d)",
                  (long long) n, std::max(num_group, group_size), num_group, group_size);
    }
    if (n > (int64_t) UINT32_MAX) ibl_throw("ERR_POINTS_UNSUPPORTED", "point cloud has %lld points; at most %u are supported", (long long) n, UINT32_MAX);
    for (int64_t i = 0; i < 3 * n; ++i) {
        if (!std::isfinite(xyz[i])) ibl_throw("ERR_POINTS_INVALID", "point %lld has a non-finite coordinate", (long long) (i / 3));
    }

    ibl_point_groups r;
    r.num_group = num_group;
    r.group_size = group_size;
    r.fps_idx.resize((size_t) num_group);
    fps(xyz, n, num_group, r.fps_idx.data());

    // centers: [G, 3]
    r.centers.resize((size_t) num_group * 3);
    for (int g = 0; g < num_group; ++g) {
        for (int c = 0; c < 3; ++c) r.centers[(size_t) g * 3 + c] = xyz[3 * r.fps_idx[g] + c];
    }

    r.knn_idx.resize((size_t) num_group * group_size);
    knn(xyz, n, r.fps_idx.data(), num_group, group_size, r.knn_idx.data());

    // neighborhoods: [G, K, 3] = xyz[knn_idx] - centre
    r.neighborhoods.resize((size_t) num_group * group_size * 3);
    for (size_t gk = 0; gk < r.knn_idx.size(); ++gk) {
        const size_t g = gk / (size_t) group_size;
        for (int c = 0; c < 3; ++c) r.neighborhoods[gk * 3 + c] = xyz[3 * r.knn_idx[gk] + c] - r.centers[g * 3 + c];
    }
    return r;
}
