// Image / video-frame / depth / thermal preprocessing against the upstream fixtures (README 4.1, 4.2, 4.5).
//
// Known deviations (see also ibl_image.h):
//  - JPEG: stb_image's IDCT and chroma upsampling are not libjpeg-turbo's, so pixels differ by a few
//    levels; the JPEG cases are held to the "decoder" tolerance (cosine >= 0.999), the lossless PNGs of
//    PIL's decoded pixels to bit-exact uint8 and the f32 tolerance.
//  - Video: H.264 decoding is not done here; the decoded-frame PNGs are the input.
#include "ibl_image.h"
#include "ibl_test.h"

#include "nlohmann/json.hpp"

#include <algorithm>
#include <cstring>

namespace {

// CLIP / ImageBind normalisation (in the model these come from the GGUF).
const ibl_image_norm CLIP_NORM = {{0.48145466f, 0.4578275f, 0.40821073f}, {0.26862954f, 0.26130258f, 0.27577711f}};

ibl_image_u8 load_rgb(const std::string & path) {
    const std::vector<uint8_t> bytes = ibl_read_file(path);
    return ibl_image_decode(bytes.data(), bytes.size(), path);
}

uint32_t crc32_png(const uint8_t * p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

void put_be32(std::vector<uint8_t> & v, uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back((uint8_t) (x >> s));
}

// PNG signature + IHDR (8-bit RGB) claiming w x h, with a valid CRC and nothing after it.
std::vector<uint8_t> png_header_only(uint32_t w, uint32_t h) {
    std::vector<uint8_t> v = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    put_be32(v, 13);
    const size_t chunk = v.size();
    v.insert(v.end(), {'I', 'H', 'D', 'R'});
    put_be32(v, w);
    put_be32(v, h);
    v.insert(v.end(), {8, 2, 0, 0, 0});
    put_be32(v, crc32_png(&v[chunk], v.size() - chunk));
    return v;
}

std::vector<float> slice(const std::vector<float> & a, size_t offset, size_t n) {
    return std::vector<float>(a.begin() + offset, a.begin() + offset + n);
}

const nlohmann::json * find_case(const nlohmann::json & m, const std::string & name) {
    for (const auto & c : m["imagebind_cases"]) {
        if (c["name"] == name) return &c;
    }
    return nullptr;
}

void test_vision(ibl_test & t, const nlohmann::json & m) {
    double worst_jpeg_cos = 1.0;
    for (const char * name : {"dog_image", "car_image", "bird_image"}) {
        const std::string cname = std::string("vision_") + name;
        const nlohmann::json * c = find_case(m, cname);
        if (!t.check(c != nullptr, cname + ": case in manifest")) continue;
        const auto & pp = (*c)["preprocess"];
        const int S = (*c)["input_shape"][3].get<int>();
        const ibl_npy ref_npy = ibl_npy_load(t.tiny((*c)["input"].get<std::string>()));
        const std::vector<float> ref = ref_npy.to_f32();

        // PIL's decoded pixels (lossless PNG): the resize/crop must be bit-exact.
        const ibl_image_u8 rgb = load_rgb(t.asset(std::string(name) + ".png"));
        t.check(rgb.w == pp["orig_size_wh"][0].get<int>() && rgb.h == pp["orig_size_wh"][1].get<int>() && rgb.c == 3,
                cname + ": PNG decodes to " + std::to_string(rgb.w) + "x" + std::to_string(rgb.h) + " RGB");
        const ibl_image_geometry g = ibl_image_geometry_for(rgb.w, rgb.h, S);
        t.check(g.resized_w == pp["resized_size_wh"][0].get<int>() && g.resized_h == pp["resized_size_wh"][1].get<int>() &&
                    g.crop_left == pp["crop_left"].get<int>() && g.crop_top == pp["crop_top"].get<int>(),
                cname + ": resized " + std::to_string(g.resized_w) + "x" + std::to_string(g.resized_h) + ", crop left " +
                    std::to_string(g.crop_left) + " top " + std::to_string(g.crop_top) + " as in the manifest");

        const ibl_image_u8 crop = ibl_image_resize_crop(rgb, S);
        const ibl_image_u8 ref_crop = load_rgb(t.tiny((*c)["resized_cropped_uint8"].get<std::string>()));
        size_t n_diff = 0;
        int max_diff = 0;
        if (crop.data.size() == ref_crop.data.size()) {
            for (size_t i = 0; i < crop.data.size(); ++i) {
                const int d = std::abs((int) crop.data[i] - (int) ref_crop.data[i]);
                n_diff += d != 0;
                max_diff = std::max(max_diff, d);
            }
        }
        t.check(crop.w == S && crop.h == S && crop.data.size() == ref_crop.data.size() && n_diff == 0,
                cname + ": crop224 uint8 bit-exact vs Pillow (" + std::to_string(n_diff) + " bytes differ, max " +
                    std::to_string(max_diff) + ")");

        const std::vector<float> x = ibl_image_normalize(crop, CLIP_NORM);
        t.check_close(x, ref, cname + ": (3,S,S) from PNG vs input tensor [f32]");
        t.check_close(ibl_image_preprocess(rgb, S, CLIP_NORM), ref, cname + ": ibl_image_preprocess from PNG [f32]");

        // The JPEG through stb_image: a different decoder, so the "decoder" tolerance.
        const ibl_image_u8 jpg = load_rgb(t.asset(std::string(name) + ".jpg"));
        double sum_abs = 0;
        int max_px = 0;
        if (jpg.data.size() == rgb.data.size()) {
            for (size_t i = 0; i < jpg.data.size(); ++i) {
                const int d = std::abs((int) jpg.data[i] - (int) rgb.data[i]);
                sum_abs += d;
                max_px = std::max(max_px, d);
            }
        }
        char buf[160];
        snprintf(buf, sizeof(buf), ": JPEG (stb) vs PIL pixels: same size, mean |diff| %.3f, max %d levels",
                 jpg.data.empty() ? 0.0 : sum_abs / jpg.data.size(), max_px);
        // libjpeg-turbo vs stb differ by rounding in the IDCT and chroma upsampling: a few levels at most.
        t.check(jpg.w == rgb.w && jpg.h == rgb.h && jpg.data.size() == rgb.data.size() && sum_abs / jpg.data.size() < 0.5 &&
                    max_px <= 8,
                cname + buf);
        const std::vector<float> xj = ibl_image_preprocess(jpg, S, CLIP_NORM);
        if (t.check_close(xj, ref, cname + ": (3,S,S) from JPEG vs input tensor [decoder]", 1.0, 0.999)) {
            double dot = 0, a = 0, b = 0;
            for (size_t i = 0; i < xj.size(); ++i) {
                dot += (double) xj[i] * ref[i];
                a += (double) xj[i] * xj[i];
                b += (double) ref[i] * ref[i];
            }
            worst_jpeg_cos = std::min(worst_jpeg_cos, dot / std::sqrt(a * b));
        }
    }
    printf("     worst JPEG cosine: %.6f\n", worst_jpeg_cos);

    // girl.jpg is a baseline JPEG (the others are progressive): the decoder must agree with PIL there too.
    const ibl_image_u8 gj = load_rgb(t.asset("girl.jpg")), gp = load_rgb(t.asset("girl.png"));
    if (t.check(gj.w == gp.w && gj.h == gp.h, "girl.jpg: same size as PIL's decode")) {
        std::vector<float> a(gj.data.begin(), gj.data.end()), b(gp.data.begin(), gp.data.end());
        t.check_close(a, b, "girl.jpg (baseline JPEG): stb pixels vs PIL pixels [decoder]", 1.0, 0.999);
    }
}

void test_depth_thermal(ibl_test & t) {
    {
        const std::string path = t.asset("depth_car.png");
        const std::vector<uint8_t> bytes = ibl_read_file(path);
        const ibl_image_u16 d = ibl_image_decode_gray16(bytes.data(), bytes.size(), path);
        t.check(d.w == 224 && d.h == 224 && d.bits == 16, "depth_car.png: 16-bit 224x224");
        const std::vector<float> ref = ibl_npy_load(t.tiny("inputs/depth_car.npy")).to_f32();
        t.check_close(ibl_depth_preprocess(d, 224), ref, "depth_car: value / 1000 vs input tensor [f32]");

        // Not S x S: resized, not refused. A 2x upscale by nearest neighbour, brought back to 224 by
        // the antialiased triangle filter, must stay close to the original.
        ibl_image_u16 big;
        big.w = 2 * d.w;
        big.h = 2 * d.h;
        big.data.resize((size_t) big.w * big.h);
        for (int y = 0; y < big.h; ++y) {
            for (int x = 0; x < big.w; ++x) big.data[(size_t) y * big.w + x] = d.data[(size_t) (y / 2) * d.w + x / 2];
        }
        const std::vector<float> r = ibl_depth_preprocess(big, 224);
        t.check_close(r, ref, "depth: a 448x448 map is resized to (1,224,224), not refused", 1.0, 0.99);
        ibl_image_u16 wide = d;
        wide.w = 448;
        wide.h = 112;
        t.check(ibl_depth_preprocess(wide, 224).size() == (size_t) 224 * 224, "depth: a 448x112 map gives (1,224,224)");
    }
    {
        const std::string path = t.asset("thermal_dog.png");
        const std::vector<uint8_t> bytes = ibl_read_file(path);
        const ibl_image_u8 g = ibl_image_decode_gray8(bytes.data(), bytes.size(), path);
        t.check(g.w == 224 && g.h == 224 && g.c == 1, "thermal_dog.png: 8-bit gray 224x224");
        const std::vector<float> ref = ibl_npy_load(t.tiny("inputs/thermal_dog.npy")).to_f32();
        t.check_close(ibl_thermal_preprocess(g, 224), ref, "thermal_dog: value / 255 vs input tensor [f32]");
        // An 8-bit PNG through the 16-bit decoder keeps its values (stb alone would scale them by 257).
        const ibl_image_u16 g16 = ibl_image_decode_gray16(bytes.data(), bytes.size(), path);
        t.check(g16.bits == 8 && g16.w == g.w && g16.h == g.h && std::equal(g.data.begin(), g.data.end(), g16.data.begin()),
                "gray16: an 8-bit PNG is widened without rescaling");
        // A colour image as thermal: PIL's convert("L") luma.
        const std::vector<uint8_t> cb = ibl_read_file(t.asset("car_image.png"));
        const ibl_image_u8 cg = ibl_image_decode_gray8(cb.data(), cb.size(), "car_image.png");
        const ibl_image_u8 crgb = ibl_image_decode(cb.data(), cb.size(), "car_image.png");
        const uint32_t r = crgb.data[0], gg = crgb.data[1], b = crgb.data[2];
        t.check(cg.c == 1 && cg.w == 640 && cg.h == 360 && cg.data[0] == (uint8_t) ((r * 19595 + gg * 38470 + b * 7471 + 0x8000) >> 16),
                "thermal: colour PNG converted with PIL's L weights");
        t.check(ibl_thermal_preprocess(cg, 224).size() == (size_t) 224 * 224, "thermal: a 640x360 image gives (1,224,224)");
    }
}

void test_video(ibl_test & t, const nlohmann::json & m) {
    for (const char * name : {"video_photos_5s", "video_short_1p2s"}) {
        const nlohmann::json * c = find_case(m, name);
        if (!t.check(c != nullptr, std::string(name) + ": case in manifest")) continue;
        const auto & pp = (*c)["preprocess"];
        const auto & shape = (*c)["input_shape"];  // (1, clips*3, 3, T, S, S)
        const int T = shape[3].get<int>(), S = shape[4].get<int>();
        const size_t per_clip = (size_t) 3 * 3 * T * S * S;
        const std::vector<float> ref = ibl_npy_load(t.tiny((*c)["input"].get<std::string>())).to_f32();
        const size_t stored_clips = ref.size() / per_clip;

        const int fh = pp["frame_size_hw"][0].get<int>(), fw = pp["frame_size_hw"][1].get<int>();
        const ibl_video_geometry g = ibl_video_geometry_for(fw, fh, S);
        bool geo_ok = g.scaled_h == pp["spatial"]["scaled_size_hw"][0].get<int>() && g.scaled_w == pp["spatial"]["scaled_size_hw"][1].get<int>();
        for (int k = 0; k < 3; ++k) {
            geo_ok &= g.crop_y[k] == pp["spatial"]["crop_offsets_yx"][k][0].get<int>();
            geo_ok &= g.crop_x[k] == pp["spatial"]["crop_offsets_yx"][k][1].get<int>();
        }
        t.check(geo_ok, std::string(name) + ": scaled " + std::to_string(g.scaled_w) + "x" + std::to_string(g.scaled_h) +
                            ", crop x " + std::to_string(g.crop_x[0]) + "/" + std::to_string(g.crop_x[1]) + "/" +
                            std::to_string(g.crop_x[2]) + " as in the manifest");

        const auto & clips = pp["clips"];
        for (size_t k = 0; k < clips.size(); ++k) {
            std::vector<ibl_image_u8> frames;
            std::string pts_list;
            for (const auto & pts : clips[k]["selected_pts"]) {
                const std::string key = std::to_string(pts.get<int64_t>());
                frames.push_back(load_rgb(t.tiny((*c)["decoded_frames_rgb_uint8"][key].get<std::string>())));
                pts_list += (pts_list.empty() ? "" : ",") + key;
            }
            const std::vector<float> x = ibl_video_clip_preprocess(frames, S, CLIP_NORM);
            // The short video stores clip 0 only (all five are identical, input_tiling repeats it).
            const size_t kk = k < stored_clips ? k : 0;
            t.check_close(x, slice(ref, kk * per_clip, per_clip),
                          std::string(name) + ": clip " + std::to_string(k) + " (pts " + pts_list + ") (3,3,T,S,S) [f32]");
            if (k == 0) {
                // Tighter than the fixture tolerance: pins torch's weight arithmetic (float32 positions are ~3e-5 off).
                t.check_close(x, slice(ref, 0, per_clip), std::string(name) + ": clip 0 within 1e-6 (float rounding only)", 1e-6,
                              0.9999999);
            }
        }
    }
}

void test_errors(ibl_test & t) {
    std::vector<uint8_t> jpg = ibl_read_file(t.asset("dog_image.jpg"));
    t.check_throws([&] { ibl_image_decode(jpg.data(), 500, "dog_500.jpg"); }, "ERR_IMAGE_DECODE", "dog_500.jpg",
                   "image: JPEG cut to 500 bytes");
    // Cut inside the scan data: stb alone would return an image with grey at the bottom.
    t.check_throws([&] { ibl_image_decode(jpg.data(), jpg.size() * 3 / 5, "dog_60pct.jpg"); }, "ERR_IMAGE_DECODE", "truncated",
                   "image: JPEG cut inside the scan data");
    const std::vector<uint8_t> png = ibl_read_file(t.asset("bird_image.png"));
    t.check_throws([&] { ibl_image_decode(png.data(), png.size() / 2, "bird_half.png"); }, "ERR_IMAGE_DECODE", "bird_half.png",
                   "image: PNG cut in half");
    std::vector<uint8_t> garbage(4096);
    uint32_t s = 12345;
    for (auto & b : garbage) {
        s = s * 1664525u + 1013904223u;
        b = (uint8_t) (s >> 24);
    }
    t.check_throws([&] { ibl_image_decode(garbage.data(), garbage.size(), "noise.bin"); }, "ERR_IMAGE_DECODE", "noise.bin",
                   "image: random bytes");
    const char text[] = "this is not an image";
    t.check_throws([&] { ibl_image_decode((const uint8_t *) text, sizeof(text), "note.txt"); }, "ERR_IMAGE_DECODE",
                   "note.txt", "image: text file");
    t.check_throws([&] { ibl_image_decode(jpg.data(), 0, "empty.jpg"); }, "ERR_IMAGE_DECODE", "empty file", "image: 0 bytes");
    t.check_throws([&] { ibl_image_decode(nullptr, 0, "null"); }, "ERR_IMAGE_DECODE", "empty file", "image: null buffer");

    const std::vector<uint8_t> huge = png_header_only(30000, 30000);
    t.check_throws([&] { ibl_image_decode(huge.data(), huge.size(), "huge.png"); }, "ERR_IMAGE_TOO_LARGE", "30000x30000",
                   "image: PNG header claiming 30000x30000");
    const std::vector<uint8_t> wide = png_header_only(20000, 100);  // stb would accept this header
    t.check_throws([&] { ibl_image_decode_gray8(wide.data(), wide.size(), "wide.png"); }, "ERR_IMAGE_TOO_LARGE", "20000x100",
                   "image: PNG header claiming 20000x100 (gray decode)");
    const std::vector<uint8_t> mp = png_header_only(12000, 9000);  // 108 megapixels, both sides allowed
    t.check_throws([&] { ibl_image_decode_gray16(mp.data(), mp.size(), "mp.png"); }, "ERR_IMAGE_TOO_LARGE", "12000x9000",
                   "image: PNG header claiming 108 megapixels (16-bit decode)");
    // A JPEG whose frame header (SOF0) claims 40000x30000: refused from the header.
    const std::vector<uint8_t> big_jpg = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x75, 0x30, 0x9C, 0x40, 0x03,
                                          0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xFF, 0xD9};
    t.check_throws([&] { ibl_image_decode(big_jpg.data(), big_jpg.size(), "big.jpg"); }, "ERR_IMAGE_TOO_LARGE", "40000x30000",
                   "image: JPEG frame header claiming 40000x30000");
    const std::vector<uint8_t> ok_hdr = png_header_only(64, 64);  // valid header, no pixel data
    t.check_throws([&] { ibl_image_decode(ok_hdr.data(), ok_hdr.size(), "nodata.png"); }, "ERR_IMAGE_DECODE", "nodata.png",
                   "image: PNG header without IDAT");

    ibl_image_u8 bad;
    bad.w = 4;
    bad.h = 4;
    bad.c = 3;  // no data
    t.check_throws([&] { ibl_image_preprocess(bad, 224, CLIP_NORM); }, "ERR_INVALID_ARG", "ibl_image_resize_crop",
                   "image: pixel buffer smaller than w*h*c");
    ibl_image_u8 px;
    px.w = px.h = 2;
    px.c = 3;
    px.data.assign(12, 7);
    t.check_throws([&] { ibl_image_preprocess(px, 0, CLIP_NORM); }, "ERR_INVALID_ARG", "target 0", "image: S = 0");
    t.check_throws([&] { ibl_video_clip_preprocess({}, 224, CLIP_NORM); }, "ERR_INVALID_ARG", "at least one frame",
                   "video: no frames");
    ibl_image_u8 other = px;
    other.w = 1;
    other.data.resize(6);
    t.check_throws([&] { ibl_video_clip_preprocess({px, other}, 224, CLIP_NORM); }, "ERR_INVALID_ARG", "frame 1",
                   "video: frames of different sizes");
}

// Small synthetic properties of the Pillow resampler that the fixtures alone would not pin down.
void test_resample(ibl_test & t) {
    ibl_image_u8 flat;
    flat.w = 37;
    flat.h = 23;
    flat.c = 3;
    flat.data.assign((size_t) 37 * 23 * 3, 200);
    const ibl_image_u8 r = ibl_image_resize_bicubic(flat, 11, 50);
    bool all = r.w == 11 && r.h == 50;
    for (uint8_t v : r.data) all &= v == 200;
    t.check(all, "resize: a flat image stays flat (down in x, up in y)");
    const ibl_image_u8 same = ibl_image_resize_bicubic(flat, 37, 23);
    t.check(same.data == flat.data, "resize: same size is the identity");
    // A hard edge overshoots under bicubic and must clamp to 0..255, not wrap.
    ibl_image_u8 edge;
    edge.w = 8;
    edge.h = 1;
    edge.c = 1;
    edge.data = {0, 0, 0, 0, 255, 255, 255, 255};
    const ibl_image_u8 e = ibl_image_resize_bicubic(edge, 13, 1);
    bool mono = true;
    for (int i = 1; i < e.w; ++i) mono &= e.data[i] >= e.data[i - 1];
    t.check(e.data.front() == 0 && e.data.back() == 255 && mono, "resize: a 0/255 edge clamps at both ends");
}

}  // namespace

void test_image(ibl_test & t) {
    const std::vector<uint8_t> mbytes = ibl_read_file(t.tiny("manifest.json"));
    const nlohmann::json m = nlohmann::json::parse(mbytes.begin(), mbytes.end());
    test_vision(t, m);
    test_depth_thermal(t);
    test_video(t, m);
    test_errors(t);
    test_resample(t);
}
