// Pixel preprocessing for the vision, video, depth and thermal encoders (see ibl_image.h).
#include "ibl_image.h"

#include "ibl_error.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

// stb_image, private to this file: STB_IMAGE_STATIC keeps its symbols out of the link so that llama.cpp's
// own copy (mtmd) cannot clash with ours; we only decode from memory.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include "stb/stb_image.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

// ---------------------------------------------------------------------------------------------------
// decoding

namespace {

// stb frees with free(); this pairs every successful stbi_load with its release.
struct ibl_stbi_pixels {
    void * p = nullptr;
    ~ibl_stbi_pixels() { stbi_image_free(p); }
};

struct ibl_image_header {
    int w = 0, h = 0, comp = 0;
    bool is_16 = false;
};

// The format and declared size, read from the header without stb: stb tries every format in turn when
// stbi_info fails, so its failure reason ("too large" from the PNG reader, say) is lost to the last
// reader's "unknown image type". Sizes are 0 where the format is not recognised or the header is short.
struct ibl_image_peek {
    const char * format = nullptr;
    int64_t w = 0, h = 0;
};

uint32_t ibl_be16(const uint8_t * p) { return (uint32_t) p[0] << 8 | p[1]; }
uint32_t ibl_le16(const uint8_t * p) { return (uint32_t) p[1] << 8 | p[0]; }
uint32_t ibl_be32(const uint8_t * p) { return ibl_be16(p) << 16 | ibl_be16(p + 2); }
uint32_t ibl_le32(const uint8_t * p) { return ibl_le16(p + 2) << 16 | ibl_le16(p); }

ibl_image_peek ibl_image_peek_header(const uint8_t * d, size_t n) {
    ibl_image_peek pk;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(d, png_sig, 8) == 0) {
        pk.format = "PNG";
        if (n >= 24 && memcmp(d + 12, "IHDR", 4) == 0) {
            pk.w = ibl_be32(d + 16);
            pk.h = ibl_be32(d + 20);
        }
    } else if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
        pk.format = "JPEG";
        // Segments up to the first SOFn (C0..CF except DHT C4, JPG C8, DAC CC): height, then width.
        size_t i = 2;
        while (i + 3 < n && d[i] == 0xFF) {
            const uint8_t m = d[i + 1];
            if (m == 0xFF) { ++i; continue; }
            if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
                if (i + 8 < n) {
                    pk.h = ibl_be16(d + i + 5);
                    pk.w = ibl_be16(d + i + 7);
                }
                break;
            }
            if (m == 0xD9 || m == 0xDA) break;
            i += 2 + ibl_be16(d + i + 2);
        }
    } else if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0)) {
        pk.format = "GIF";
        if (n >= 10) {
            pk.w = ibl_le16(d + 6);
            pk.h = ibl_le16(d + 8);
        }
    } else if (n >= 2 && d[0] == 'B' && d[1] == 'M') {
        pk.format = "BMP";
        if (n >= 26) {
            if (ibl_le32(d + 14) == 12) {  // OS/2 core header: 16-bit sizes
                pk.w = ibl_le16(d + 18);
                pk.h = ibl_le16(d + 20);
            } else {
                pk.w = (int32_t) ibl_le32(d + 18);
                pk.h = (int32_t) ibl_le32(d + 22);
                if (pk.h < 0) pk.h = -pk.h;  // top-down rows
            }
        }
    }
    return pk;
}

bool ibl_too_large(int64_t w, int64_t h) {
    return w > IBL_IMAGE_MAX_SIDE || h > IBL_IMAGE_MAX_SIDE || w * h > IBL_IMAGE_MAX_PIXELS;
}

[[noreturn]] void ibl_throw_too_large(const std::string & what, int64_t w, int64_t h) {
    ibl_throw("ERR_IMAGE_TOO_LARGE", "%s: image is %lldx%lld; at most %d pixels a side and %lld pixels in all are accepted",
              what.c_str(), (long long) w, (long long) h, IBL_IMAGE_MAX_SIDE, (long long) IBL_IMAGE_MAX_PIXELS);
}

// PIL (libjpeg-turbo) refuses a JPEG that ends before its EOI marker ("image file is truncated"), while
// stb_image fills the missing scan data with grey and succeeds. Walk the marker segments (skipping
// entropy-coded data, stuffed 0xFF00 and RSTn) until EOI; segments are skipped by their length, so an
// EXIF thumbnail's own EOI inside APP1 does not count.
bool ibl_jpeg_reaches_eoi(const uint8_t * d, size_t n) {
    size_t i = 2;  // after SOI
    while (i + 1 < n) {
        if (d[i] != 0xFF) { ++i; continue; }
        const uint8_t m = d[i + 1];
        if (m == 0xFF) { ++i; continue; }                                        // fill byte
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { i += 2; continue; }  // stuffing, TEM, RSTn
        if (m == 0xD9) return true;                                             // EOI
        if (i + 3 >= n) return false;
        i += 2 + ((size_t) d[i + 2] << 8 | d[i + 3]);
    }
    return false;
}

// Reads the header only and refuses what we will not decode, before stb allocates any pixels.
ibl_image_header ibl_image_check(const uint8_t * data, size_t size, const std::string & what) {
    if (data == nullptr || size == 0) {
        ibl_throw("ERR_IMAGE_DECODE", "%s: cannot decode image: empty file", what.c_str());
    }
    if (size > (size_t) INT_MAX) {
        ibl_throw("ERR_IMAGE_TOO_LARGE", "%s: image file is %zu bytes; at most %d bytes are accepted", what.c_str(), size, INT_MAX);
    }
    const ibl_image_peek pk = ibl_image_peek_header(data, size);
    if (ibl_too_large(pk.w, pk.h)) {
        ibl_throw_too_large(what, pk.w, pk.h);
    }
    ibl_image_header hd;
    if (!stbi_info_from_memory(data, (int) size, &hd.w, &hd.h, &hd.comp)) {
        if (pk.format) {
            ibl_throw("ERR_IMAGE_DECODE", "%s: cannot decode image (%s header is corrupt, truncated or of an unsupported kind)", what.c_str(), pk.format);
        }
        ibl_throw("ERR_IMAGE_DECODE", "%s: cannot decode image (not a format we read: JPEG, PNG, BMP, GIF, TGA, PSD, PNM, HDR, PIC)",
                  what.c_str());
    }
    if (hd.w <= 0 || hd.h <= 0) {
        ibl_throw("ERR_IMAGE_DECODE", "%s: cannot decode image (size %dx%d)", what.c_str(), hd.w, hd.h);
    }
    if (ibl_too_large(hd.w, hd.h)) {
        ibl_throw_too_large(what, hd.w, hd.h);
    }
    if (size >= 2 && data[0] == 0xFF && data[1] == 0xD8 && !ibl_jpeg_reaches_eoi(data, size)) {
        ibl_throw("ERR_IMAGE_DECODE", "%s: cannot decode image (JPEG is truncated: no end-of-image marker)", what.c_str());
    }
    hd.is_16 = stbi_is_16_bit_from_memory(data, (int) size) != 0;
    return hd;
}

ibl_image_u8 ibl_image_load_u8(const uint8_t * data, size_t size, const std::string & what, int req_comp) {
    int w = 0, h = 0, comp = 0;
    ibl_stbi_pixels px;
    px.p = stbi_load_from_memory(data, (int) size, &w, &h, &comp, req_comp);
    if (!px.p) {
        const char * reason = stbi_failure_reason();
        ibl_throw("ERR_IMAGE_DECODE", "%s: cannot decode image (%s)", what.c_str(), reason ? reason : "unknown error");
    }
    ibl_image_u8 img;
    img.w = w;
    img.h = h;
    img.c = req_comp;
    const uint8_t * p = (const uint8_t *) px.p;
    img.data.assign(p, p + (size_t) w * h * req_comp);
    return img;
}

}  // namespace

// ref: PIL Image.open(...).convert("RGB") (ImageBind data.py load_and_transform_vision_data)
ibl_image_u8 ibl_image_decode(const uint8_t * data, size_t size, const std::string & what) {
    ibl_image_check(data, size, what);
    // stb's conversion to 3 channels matches convert("RGB"): gray replicated, alpha dropped, palette expanded.
    return ibl_image_load_u8(data, size, what, 3);
}

// ref: PIL Image.convert("L"): L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16 (ITU-R 601-2 luma).
ibl_image_u8 ibl_image_decode_gray8(const uint8_t * data, size_t size, const std::string & what) {
    const ibl_image_header hd = ibl_image_check(data, size, what);
    if (hd.comp <= 2) {
        return ibl_image_load_u8(data, size, what, 1);  // gray (+ alpha, dropped)
    }
    // stb's own colour -> gray weights (77, 150, 29) differ from PIL's: convert here.
    const ibl_image_u8 rgb = ibl_image_load_u8(data, size, what, 3);
    ibl_image_u8 out;
    out.w = rgb.w;
    out.h = rgb.h;
    out.c = 1;
    out.data.resize((size_t) rgb.w * rgb.h);
    for (size_t i = 0; i < out.data.size(); ++i) {
        const uint32_t r = rgb.data[i * 3 + 0], g = rgb.data[i * 3 + 1], b = rgb.data[i * 3 + 2];
        out.data[i] = (uint8_t) ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
    }
    return out;
}

ibl_image_u16 ibl_image_decode_gray16(const uint8_t * data, size_t size, const std::string & what) {
    const ibl_image_header hd = ibl_image_check(data, size, what);
    if (hd.comp > 2) {
        ibl_throw("ERR_INPUT_INVALID", "%s: a depth map is a single-channel image (16-bit millimetres, or 8-bit), this one has %d channels",
                  what.c_str(), hd.comp);
    }
    ibl_image_u16 out;
    if (!hd.is_16) {
        // stb would widen 8-bit samples as v * 257; depth values are counts, so keep them as stored.
        const ibl_image_u8 g = ibl_image_load_u8(data, size, what, 1);
        out.w = g.w;
        out.h = g.h;
        out.bits = 8;
        out.data.assign(g.data.begin(), g.data.end());
        return out;
    }
    int w = 0, h = 0, comp = 0;
    ibl_stbi_pixels px;
    px.p = stbi_load_16_from_memory(data, (int) size, &w, &h, &comp, 1);
    if (!px.p) {
        const char * reason = stbi_failure_reason();
        ibl_throw("ERR_IMAGE_DECODE", "%s: cannot decode image (%s)", what.c_str(), reason ? reason : "unknown error");
    }
    out.w = w;
    out.h = h;
    out.bits = 16;
    const uint16_t * p = (const uint16_t *) px.p;
    out.data.assign(p, p + (size_t) w * h);
    return out;
}

// ---------------------------------------------------------------------------------------------------
// geometry

namespace {

void ibl_check_size(int w, int h, int S, const char * fn) {
    if (w <= 0 || h <= 0 || S <= 0) {
        ibl_throw("ERR_INVALID_ARG", "%s: expected positive sizes but got image %dx%d and target %d", fn, w, h, S);
    }
}

// Python round(d / 2) for an integer d >= 0: halves go to the even neighbour.
int ibl_half_round_even(int d) {
    const int k = d / 2;
    if (d % 2 == 0) return k;
    return (k % 2 == 0) ? k : k + 1;
}

}  // namespace

// ref: torchvision transforms.functional._compute_resized_output_size (int size), center_crop
ibl_image_geometry ibl_image_geometry_for(int w, int h, int S) {
    ibl_check_size(w, h, S, "ibl_image_geometry_for");
    ibl_image_geometry g;
    // int(S * long / short): an exact integer product, then Python's correctly rounded true division.
    const int short_side = std::min(w, h), long_side = std::max(w, h);
    const int new_long = (int) std::floor((double) ((int64_t) S * long_side) / (double) short_side);
    g.resized_w = w <= h ? S : new_long;
    g.resized_h = w <= h ? new_long : S;
    g.crop_left = ibl_half_round_even(g.resized_w - S);
    g.crop_top = ibl_half_round_even(g.resized_h - S);
    return g;
}

// ref: pytorchvideo transforms.functional.short_side_scale; ImageBind data.py SpatialCrop / uniform_crop
ibl_video_geometry ibl_video_geometry_for(int w, int h, int S) {
    ibl_check_size(w, h, S, "ibl_video_geometry_for");
    ibl_video_geometry g;
    // floor(float(long) / short * S): the ratio is rounded first, unlike the image path.
    if (w < h) {
        g.scaled_w = S;
        g.scaled_h = (int) std::floor((double) h / (double) w * S);
    } else {
        g.scaled_h = S;
        g.scaled_w = (int) std::floor((double) w / (double) h * S);
    }
    const int cy = (g.scaled_h - S + 1) / 2, cx = (g.scaled_w - S + 1) / 2;  // ceil(d / 2), d >= 0
    for (int i = 0; i < 3; ++i) {
        g.crop_y[i] = cy;
        g.crop_x[i] = cx;
    }
    // Portrait crops move along y; landscape and square along x.
    if (g.scaled_h > g.scaled_w) {
        g.crop_y[0] = 0;
        g.crop_y[2] = g.scaled_h - S;
    } else {
        g.crop_x[0] = 0;
        g.crop_x[2] = g.scaled_w - S;
    }
    return g;
}

// ---------------------------------------------------------------------------------------------------
// Pillow resampling: separable, antialiased (support widened by the downscale factor), coefficients
// precomputed per output pixel and normalised to sum 1; 8-bit images use 22-bit fixed point.

namespace {

struct ibl_resample_filter {
    double (*fn)(double);
    double support;
};

// Keys cubic convolution, a = -0.5 (Horner form evaluated as Pillow does, for bit-exact coefficients).
double ibl_filter_bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

double ibl_filter_triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

const ibl_resample_filter IBL_BICUBIC = {ibl_filter_bicubic, 2.0};
const ibl_resample_filter IBL_BILINEAR = {ibl_filter_triangle, 1.0};

// Pillow's fixed point: 8 bits of result, 2 bits of headroom for negative lobes / sums above 1.
constexpr int IBL_PRECISION_BITS = 32 - 8 - 2;

// For each output pixel: the first input index and the weights of the taps that follow it.
struct ibl_resample_coeffs {
    int ksize = 0;
    std::vector<int>    first, count;  // per output pixel
    std::vector<double> k;             // out_size * ksize, zero beyond count
};

// ref: Pillow src/libImaging/Resample.c precompute_coeffs (box = whole image)
ibl_resample_coeffs ibl_resample_coeffs_for(int in_size, int out_size, const ibl_resample_filter & f) {
    ibl_resample_coeffs c;
    const double scale = (double) in_size / out_size;
    const double filter_scale = std::max(scale, 1.0);  // antialias: widen only when shrinking
    const double support = f.support * filter_scale;
    const double inv_scale = 1.0 / filter_scale;  // Pillow multiplies by the reciprocal
    c.ksize = (int) std::ceil(support) * 2 + 1;
    c.first.resize(out_size);
    c.count.resize(out_size);
    c.k.assign((size_t) out_size * c.ksize, 0.0);
    for (int o = 0; o < out_size; ++o) {
        const double center = (o + 0.5) * scale;
        // (int) truncates toward zero, as Pillow's "+ 0.5" rounding does; then clamp to the image.
        const int lo = std::max((int) (center - support + 0.5), 0);
        const int hi = std::min((int) (center + support + 0.5), in_size);
        const int n = hi - lo;
        double * k = &c.k[(size_t) o * c.ksize];
        double sum = 0.0;
        for (int i = 0; i < n; ++i) {
            k[i] = f.fn((i + lo - center + 0.5) * inv_scale);
            sum += k[i];
        }
        if (sum != 0.0) {
            for (int i = 0; i < n; ++i) k[i] /= sum;
        }
        c.first[o] = lo;
        c.count[o] = n;
    }
    return c;
}

// ref: Pillow normalize_coeffs_8bpc: round half away from zero to 22-bit integers.
std::vector<int32_t> ibl_coeffs_fixed(const ibl_resample_coeffs & c) {
    std::vector<int32_t> out(c.k.size());
    const double one = (double) (1 << IBL_PRECISION_BITS);
    for (size_t i = 0; i < c.k.size(); ++i) {
        out[i] = c.k[i] < 0 ? (int32_t) (-0.5 + c.k[i] * one) : (int32_t) (0.5 + c.k[i] * one);
    }
    return out;
}

// Accumulator (with the rounding half already added) -> uint8: shift out the fraction, clamp.
inline uint8_t ibl_clip8(int32_t acc) {
    if (acc < 0) return 0;
    const int32_t v = acc >> IBL_PRECISION_BITS;
    return (uint8_t) (v > 255 ? 255 : v);
}

// Both passes of Pillow's ImagingResample on an interleaved image (c channels), 8 bits per sample.
// ref: Pillow ImagingResampleInner, ImagingResampleHorizontal_8bpc, ImagingResampleVertical_8bpc
ibl_image_u8 ibl_resample_u8(const ibl_image_u8 & src, int out_w, int out_h, const ibl_resample_filter & f) {
    const int c = src.c;
    const bool need_h = out_w != src.w, need_v = out_h != src.h;
    ibl_resample_coeffs ch = ibl_resample_coeffs_for(src.w, out_w, f);
    ibl_resample_coeffs cv = ibl_resample_coeffs_for(src.h, out_h, f);
    const std::vector<int32_t> kh = ibl_coeffs_fixed(ch), kv = ibl_coeffs_fixed(cv);

    // Horizontal pass first, only over the rows the vertical pass will read.
    const int row0 = need_v ? cv.first[0] : 0;
    const int row1 = need_v ? cv.first[out_h - 1] + cv.count[out_h - 1] : src.h;
    ibl_image_u8 tmp;
    const ibl_image_u8 * mid = &src;
    int mid_row0 = 0;  // source row of mid's row 0
    if (need_h) {
        tmp.w = out_w;
        tmp.h = row1 - row0;
        tmp.c = c;
        tmp.data.resize((size_t) tmp.w * tmp.h * c);
        for (int y = 0; y < tmp.h; ++y) {
            const uint8_t * in = &src.data[(size_t) (y + row0) * src.w * c];
            uint8_t * out = &tmp.data[(size_t) y * out_w * c];
            for (int x = 0; x < out_w; ++x) {
                const int32_t * k = &kh[(size_t) x * ch.ksize];
                const uint8_t * p = in + (size_t) ch.first[x] * c;
                for (int ci = 0; ci < c; ++ci) {
                    int32_t acc = 1 << (IBL_PRECISION_BITS - 1);
                    for (int i = 0; i < ch.count[x]; ++i) acc += p[(size_t) i * c + ci] * k[i];
                    out[(size_t) x * c + ci] = ibl_clip8(acc);
                }
            }
        }
        mid = &tmp;
        mid_row0 = row0;
    }
    if (!need_v) {
        return need_h ? tmp : src;
    }
    ibl_image_u8 dst;
    dst.w = out_w;
    dst.h = out_h;
    dst.c = c;
    dst.data.resize((size_t) out_w * out_h * c);
    const size_t stride = (size_t) mid->w * c;
    for (int y = 0; y < out_h; ++y) {
        const int32_t * k = &kv[(size_t) y * cv.ksize];
        const uint8_t * in = &mid->data[(size_t) (cv.first[y] - mid_row0) * stride];
        uint8_t * out = &dst.data[(size_t) y * stride];
        for (size_t xc = 0; xc < stride; ++xc) {
            int32_t acc = 1 << (IBL_PRECISION_BITS - 1);
            for (int i = 0; i < cv.count[y]; ++i) acc += in[(size_t) i * stride + xc] * k[i];
            out[xc] = ibl_clip8(acc);
        }
    }
    return dst;
}

// The same resampler on one float plane, as Pillow does for mode "F" (double accumulation, float store).
// ref: Pillow ImagingResampleHorizontal_32bpc / ImagingResampleVertical_32bpc
std::vector<float> ibl_resample_f32(const std::vector<float> & src, int w, int h, int out_w, int out_h,
                                    const ibl_resample_filter & f) {
    const ibl_resample_coeffs ch = ibl_resample_coeffs_for(w, out_w, f);
    const ibl_resample_coeffs cv = ibl_resample_coeffs_for(h, out_h, f);
    std::vector<float> tmp((size_t) out_w * h);
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < out_w; ++x) {
            const double * k = &ch.k[(size_t) x * ch.ksize];
            double acc = 0.0;
            for (int i = 0; i < ch.count[x]; ++i) acc += src[(size_t) y * w + ch.first[x] + i] * k[i];
            tmp[(size_t) y * out_w + x] = (float) acc;
        }
    }
    std::vector<float> dst((size_t) out_w * out_h);
    for (int y = 0; y < out_h; ++y) {
        const double * k = &cv.k[(size_t) y * cv.ksize];
        for (int x = 0; x < out_w; ++x) {
            double acc = 0.0;
            for (int i = 0; i < cv.count[y]; ++i) acc += tmp[(size_t) (cv.first[y] + i) * out_w + x] * k[i];
            dst[(size_t) y * out_w + x] = (float) acc;
        }
    }
    return dst;
}

void ibl_check_image(const ibl_image_u8 & img, const char * fn) {
    if (img.w <= 0 || img.h <= 0 || (img.c != 1 && img.c != 3) || img.data.size() != (size_t) img.w * img.h * img.c) {
        ibl_throw("ERR_INVALID_ARG", "%s: expected a %s image but got %dx%d with %d channels and %zu bytes", fn,
                  "non-empty 1- or 3-channel", img.w, img.h, img.c, img.data.size());
    }
}

}  // namespace

// ref: PIL Image.resize(size, Image.BICUBIC) (torchvision Resize with InterpolationMode.BICUBIC on a PIL image)
ibl_image_u8 ibl_image_resize_bicubic(const ibl_image_u8 & src, int out_w, int out_h) {
    ibl_check_image(src, "ibl_image_resize_bicubic");
    if (out_w <= 0 || out_h <= 0 || out_w > IBL_IMAGE_MAX_SIDE || out_h > IBL_IMAGE_MAX_SIDE) {
        ibl_throw("ERR_INVALID_ARG", "ibl_image_resize_bicubic: expected an output size in 1..%d but got %dx%d",
                  IBL_IMAGE_MAX_SIDE, out_w, out_h);
    }
    return ibl_resample_u8(src, out_w, out_h, IBL_BICUBIC);
}

ibl_image_u8 ibl_image_crop(const ibl_image_u8 & src, int left, int top, int w, int h) {
    ibl_check_image(src, "ibl_image_crop");
    if (left < 0 || top < 0 || w <= 0 || h <= 0 || left + w > src.w || top + h > src.h) {
        ibl_throw("ERR_INVALID_ARG", "ibl_image_crop: crop %dx%d at (%d, %d) does not fit in a %dx%d image", w, h, left,
                  top, src.w, src.h);
    }
    ibl_image_u8 out;
    out.w = w;
    out.h = h;
    out.c = src.c;
    out.data.resize((size_t) w * h * src.c);
    for (int y = 0; y < h; ++y) {
        memcpy(&out.data[(size_t) y * w * src.c], &src.data[((size_t) (y + top) * src.w + left) * src.c], (size_t) w * src.c);
    }
    return out;
}

// ref: torchvision transforms.Resize(S, BICUBIC) then CenterCrop(S) (ImageBind data.py)
ibl_image_u8 ibl_image_resize_crop(const ibl_image_u8 & rgb, int S) {
    ibl_check_image(rgb, "ibl_image_resize_crop");
    const ibl_image_geometry g = ibl_image_geometry_for(rgb.w, rgb.h, S);
    return ibl_image_crop(ibl_image_resize_bicubic(rgb, g.resized_w, g.resized_h), g.crop_left, g.crop_top, S, S);
}

// ref: torchvision ToTensor (uint8 -> float / 255) then Normalize (sub mean, div std), float32 throughout
std::vector<float> ibl_image_normalize(const ibl_image_u8 & rgb, const ibl_image_norm & norm) {
    ibl_check_image(rgb, "ibl_image_normalize");
    if (rgb.c != 3) {
        ibl_throw("ERR_INVALID_ARG", "ibl_image_normalize: expected an RGB image but got %d channel(s)", rgb.c);
    }
    const size_t plane = (size_t) rgb.w * rgb.h;
    std::vector<float> out(3 * plane);  // (3, h, w)
    for (int ch = 0; ch < 3; ++ch) {
        float * o = &out[ch * plane];
        for (size_t i = 0; i < plane; ++i) {
            const float x = (float) rgb.data[i * 3 + ch] / 255.0f;
            o[i] = (x - norm.mean[ch]) / norm.std[ch];
        }
    }
    return out;
}

std::vector<float> ibl_image_preprocess(const ibl_image_u8 & rgb, int S, const ibl_image_norm & norm) {
    return ibl_image_normalize(ibl_image_resize_crop(rgb, S), norm);
}

// ---------------------------------------------------------------------------------------------------
// depth / thermal (fixture conventions, README 4.5; upstream has no loaders)

namespace {

// A single-channel float plane that is not S x S is brought to S x S the way the vision path is (short
// side -> S, centre crop rounded half to even), but with Pillow's antialiased BILINEAR (triangle) filter
// in float, as Image.fromarray(f32).resize(size, BILINEAR) would: unlike bicubic it never overshoots,
// so depth stays non-negative and object edges do not ring.
std::vector<float> ibl_plane_to_square(std::vector<float> plane, int w, int h, int S) {
    if (w == S && h == S) return plane;
    const ibl_image_geometry g = ibl_image_geometry_for(w, h, S);
    const std::vector<float> r = ibl_resample_f32(plane, w, h, g.resized_w, g.resized_h, IBL_BILINEAR);
    std::vector<float> out((size_t) S * S);  // (1, S, S)
    for (int y = 0; y < S; ++y) {
        memcpy(&out[(size_t) y * S], &r[(size_t) (y + g.crop_top) * g.resized_w + g.crop_left], (size_t) S * sizeof(float));
    }
    return out;
}

}  // namespace

std::vector<float> ibl_depth_preprocess(const ibl_image_u16 & depth, int S) {
    if (depth.w <= 0 || depth.h <= 0 || depth.data.size() != (size_t) depth.w * depth.h || S <= 0) {
        ibl_throw("ERR_INVALID_ARG", "ibl_depth_preprocess: expected a non-empty depth map and S > 0 but got %dx%d (%zu values), S %d",
                  depth.w, depth.h, depth.data.size(), S);
    }
    std::vector<float> plane(depth.data.size());
    for (size_t i = 0; i < plane.size(); ++i) plane[i] = (float) depth.data[i] / 1000.0f;  // millimetres -> metres
    return ibl_plane_to_square(std::move(plane), depth.w, depth.h, S);
}

std::vector<float> ibl_thermal_preprocess(const ibl_image_u8 & gray, int S) {
    ibl_check_image(gray, "ibl_thermal_preprocess");
    if (gray.c != 1 || S <= 0) {
        ibl_throw("ERR_INVALID_ARG", "ibl_thermal_preprocess: expected a 1-channel image and S > 0 but got %d channels, S %d", gray.c, S);
    }
    std::vector<float> plane(gray.data.size());
    for (size_t i = 0; i < plane.size(); ++i) plane[i] = (float) gray.data[i] / 255.0f;
    return ibl_plane_to_square(std::move(plane), gray.w, gray.h, S);
}

// ---------------------------------------------------------------------------------------------------
// video

namespace {

// Source taps of torch's linear upsampling along one axis, align_corners=False, no antialias.
struct ibl_linear_tap {
    int   i0, i1;
    float w0, w1;
};

// The scale is float32 (torch's (float) in / out), but the source position and the weights are formed in
// double and only then stored as float (center = scale * (o + 0.5), as torch's separable CPU kernel
// writes it). Found by fitting the per-column weights to the fixtures: forming the position in float32
// instead puts it up to 1 ulp (1.5e-5 at x = 180) off and the tensors ~3e-5 off; this form agrees with
// them to 2 float ulps.
// ref: aten/src/ATen/native/cpu/UpSampleKernel.cpp HelperInterpLinear, area_pixel_compute_scale (align_corners=False)
std::vector<ibl_linear_tap> ibl_torch_linear_taps(int in_size, int out_size) {
    std::vector<ibl_linear_tap> taps(out_size);
    const double scale = (double) ((float) in_size / (float) out_size);
    for (int o = 0; o < out_size; ++o) {
        const double src = std::max(scale * (o + 0.5) - 0.5, 0.0);  // the first half pixel clamps to the edge
        const int i0 = std::min((int) std::floor(src), in_size - 1);
        const double l1 = std::min(std::max(src - i0, 0.0), 1.0);
        taps[o] = {i0, i0 < in_size - 1 ? i0 + 1 : i0, (float) (1.0 - l1), (float) l1};
    }
    return taps;
}

}  // namespace

// ref: ImageBind data.py load_and_transform_video_data: clip / 255, ShortSideScale(S) (bilinear
// F.interpolate), NormalizeVideo(mean, std), SpatialCrop(S, num_crops=3)
std::vector<float> ibl_video_clip_preprocess(const std::vector<ibl_image_u8> & frames, int S, const ibl_image_norm & norm) {
    if (frames.empty()) {
        ibl_throw("ERR_INVALID_ARG", "ibl_video_clip_preprocess: expected at least one frame but got none");
    }
    const int W = frames[0].w, H = frames[0].h, T = (int) frames.size();
    for (int t = 0; t < T; ++t) {
        ibl_check_image(frames[t], "ibl_video_clip_preprocess");
        if (frames[t].c != 3 || frames[t].w != W || frames[t].h != H) {
            ibl_throw("ERR_INVALID_ARG", "ibl_video_clip_preprocess: expected RGB frames of %dx%d but frame %d is %dx%d with %d channel(s)",
                      W, H, t, frames[t].w, frames[t].h, frames[t].c);
        }
    }
    const ibl_video_geometry g = ibl_video_geometry_for(W, H, S);
    const int Ws = g.scaled_w, Hs = g.scaled_h;
    const std::vector<ibl_linear_tap> tx = ibl_torch_linear_taps(W, Ws), ty = ibl_torch_linear_taps(H, Hs);

    // scaled: (3, T, Hs, Ws), normalised
    const size_t plane = (size_t) Hs * Ws;
    std::vector<float> scaled((size_t) 3 * T * plane);
    std::vector<float> src((size_t) W * H);
    for (int ch = 0; ch < 3; ++ch) {
        for (int t = 0; t < T; ++t) {
            const uint8_t * px = frames[t].data.data();
            for (size_t i = 0; i < src.size(); ++i) src[i] = (float) px[i * 3 + ch] / 255.0f;
            float * out = &scaled[((size_t) ch * T + t) * plane];
            for (int y = 0; y < Hs; ++y) {
                const float * r0 = &src[(size_t) ty[y].i0 * W];
                const float * r1 = &src[(size_t) ty[y].i1 * W];
                for (int x = 0; x < Ws; ++x) {
                    const ibl_linear_tap & a = tx[x];
                    const float v = (r0[a.i0] * a.w0 + r0[a.i1] * a.w1) * ty[y].w0 + (r1[a.i0] * a.w0 + r1[a.i1] * a.w1) * ty[y].w1;
                    out[(size_t) y * Ws + x] = (v - norm.mean[ch]) / norm.std[ch];
                }
            }
        }
    }

    // (3 crops, 3, T, S, S)
    const size_t crop_plane = (size_t) S * S;
    std::vector<float> out((size_t) 3 * 3 * T * crop_plane);
    for (int k = 0; k < 3; ++k) {
        for (int ct = 0; ct < 3 * T; ++ct) {
            const float * in = &scaled[(size_t) ct * plane];
            float * o = &out[((size_t) k * 3 * T + ct) * crop_plane];
            for (int y = 0; y < S; ++y) {
                memcpy(&o[(size_t) y * S], &in[(size_t) (y + g.crop_y[k]) * Ws + g.crop_x[k]], (size_t) S * sizeof(float));
            }
        }
    }
    return out;
}
