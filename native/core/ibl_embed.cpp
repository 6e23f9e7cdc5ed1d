#include "ibl_embed.h"
#include "ibl_error.h"
#include "ibl_npy.h"
#include "ibl_audio.h"
#include "ibl_bpe.h"
#include "ibl_image.h"
#include "ibl_points.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace {

// Inputs hold finite values small enough that the preprocessing and the graph cannot overflow float32
// (squared distances of points, IMU windows through a linear layer, LayerNorm variances).
constexpr float IBL_INPUT_MAX_ABS = 1e15f;

void check_values(const std::vector<float> & v, const std::string & what) {
    for (size_t i = 0; i < v.size(); ++i) {
        if (!std::isfinite(v[i])) ibl_throw("ERR_INPUT_INVALID", "%s: value %zu is %s", what.c_str(), i, std::isnan(v[i]) ? "NaN" : "infinite");
        if (std::fabs(v[i]) > IBL_INPUT_MAX_ABS) {
            ibl_throw("ERR_INPUT_INVALID", "%s: value %zu (%g) is out of range (|x| ≤ %g)", what.c_str(), i, v[i], (double) IBL_INPUT_MAX_ABS);
        }
    }
}

std::string lower_ext(const std::string & what, const std::string & format) {
    if (!format.empty()) return format;
    const size_t dot = what.find_last_of('.');
    if (dot == std::string::npos) return "";
    std::string e = what.substr(dot + 1);
    for (auto & c : e) c = (char) tolower((unsigned char) c);
    return e;
}

// An already preprocessed tensor: its trailing dims must hold whole items; leading dims give clips.
ibl_prepared prepare_tensor(const ibl_model & model, const ibl_input & in) {
    ibl_prepared p;
    const int64_t item = ibl_encoder_item_size(model, in.mod);
    int64_t n = 1;
    for (int64_t d : in.tensor_shape) n *= d;
    if (n != (int64_t) in.tensor.size() || n == 0 || n % item != 0) {
        ibl_throw("ERR_INPUT_SHAPE", "%s: %s tensor has %zu values, not a whole number of %lld-value inputs", in.what.c_str(),
                  ibl_modality_get(in.mod).name, in.tensor.size(), (long long) item);
    }
    p.n_clips = (int) (n / item);
    if (in.mod == IBL_MOD_TEXT) {
        for (float v : in.tensor) {
            if (!(v >= 0 && v < model.text.vocab_size) || v != std::floor(v)) {
                ibl_throw("ERR_INPUT_INVALID", "%s: token id %g is not an id of the %d-token vocabulary", in.what.c_str(), v, model.text.vocab_size);
            }
            p.ids.push_back((int32_t) v);
        }
    } else {
        check_values(in.tensor, in.what);
        p.data = in.tensor;
    }
    return p;
}

std::vector<float> npy_values(const ibl_input & in, std::vector<int64_t> & shape) {
    const ibl_npy a = ibl_npy_parse(in.bytes.data(), in.bytes.size(), in.what);
    shape = a.shape;
    return a.to_f32();
}

// .npy holding exactly one item of `want` values (leading 1-dims allowed).
std::vector<float> npy_item(const ibl_input & in, int64_t want, const char * expect) {
    std::vector<int64_t> shape;
    std::vector<float> v = npy_values(in, shape);
    if ((int64_t) v.size() != want) {
        std::string got;
        for (int64_t d : shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
        ibl_throw("ERR_INPUT_SHAPE", "%s: array of shape (%s), expected %s", in.what.c_str(), got.c_str(), expect);
    }
    check_values(v, in.what);
    return v;
}

ibl_prepared prepare_points(const ibl_model & model, const ibl_input & in) {
    const ibl_point_cloud pc = ibl_points_parse(in.bytes.data(), in.bytes.size(), in.what, in.format);
    check_values(pc.xyz, in.what);
    const ibl_point_groups g = ibl_points_group(pc.xyz.data(), pc.n, model.point.num_group, model.point.group_size);
    ibl_prepared p;
    p.data = g.neighborhoods;
    p.centers = g.centers;
    return p;
}

ibl_prepared prepare_imu(const ibl_model & model, const ibl_input & in) {
    char expect[64];
    snprintf(expect, sizeof(expect), "(%d, %d) IMU samples", model.imu.channels, model.imu.length);
    ibl_prepared p;
    p.data = npy_item(in, (int64_t) model.imu.channels * model.imu.length, expect);
    return p;
}

ibl_image_norm vision_norm(const ibl_model & model) {
    ibl_image_norm n;
    for (int c = 0; c < 3; ++c) { n.mean[c] = model.vision.mean[c]; n.std[c] = model.vision.std[c]; }
    return n;
}

ibl_prepared prepare_image(const ibl_model & model, const ibl_input & in) {
    const int S = model.vision.image_size;
    const ibl_image_u8 img = ibl_image_decode(in.bytes.data(), in.bytes.size(), in.what);
    ibl_prepared p;
    const std::vector<float> chw = ibl_image_preprocess(img, S, vision_norm(model));
    p.data = ibl_images_to_clips(chw.data(), 1, 3, (int64_t) S * S, model.vision.frames);
    return p;
}

// Decoded video: each clip's selected frames → 3 spatial crops per clip, clip-major.
ibl_prepared prepare_video(const ibl_model & model, const ibl_input & in) {
    const int S = model.vision.image_size;
    if (in.clips.empty()) ibl_throw("ERR_INPUT_INVALID", "%s: the video has no clips", in.what.c_str());
    ibl_prepared p;
    p.n_clips = 0;
    for (const auto & clip : in.clips) {
        if ((int) clip.size() != model.vision.frames) {
            ibl_throw("ERR_INPUT_INVALID", "%s: a clip has %zu frames, the model takes %d", in.what.c_str(), clip.size(), model.vision.frames);
        }
        std::vector<ibl_image_u8> frames;
        for (const auto & f : clip) frames.push_back(ibl_image_u8{f.width, f.height, 3, f.rgb});
        const std::vector<float> crops = ibl_video_clip_preprocess(frames, S, vision_norm(model));  // [3 crops, 3, T, S, S]
        p.data.insert(p.data.end(), crops.begin(), crops.end());
        p.n_clips += 3;
    }
    return p;
}

ibl_prepared prepare_audio(const ibl_model & model, const ibl_input & in) {
    if (!model.audio_ctx) ibl_throw("ERR_INTERNAL", "audio preprocessing is not initialised");
    ibl_wave wave;
    const std::vector<std::vector<float>> * channels = &in.channels;
    int rate = in.sample_rate;
    if (in.channels.empty()) {
        // Bytes: a WAV file read in-process (other containers are decoded by ffmpeg before they get here).
        wave = ibl_wav_parse(in.bytes.data(), in.bytes.size(), in.what);
        channels = &wave.channels;
        rate = wave.sample_rate;
    }
    if (channels->empty() || (*channels)[0].empty()) ibl_throw("ERR_AUDIO_EMPTY", "%s: no audio samples", in.what.c_str());
    ibl_prepared p;
    p.data = ibl_audio_preprocess(*model.audio_ctx, *channels, rate);
    p.n_clips = model.audio.clips_per_video;
    return p;
}

ibl_prepared prepare_text(const ibl_model & model, const ibl_input & in, const ibl_embed_options & opt) {
    if (!model.tokenizer) ibl_throw("ERR_INTERNAL", "the text tokenizer is not initialised");
    ibl_prepared p;
    p.ids = model.tokenizer->tokenize(in.text, model.text.context_len,
                                      opt.truncation == IBL_TRUNCATE_IMAGEBIND_LLM ? IBL_BPE_TRUNC_IMAGEBIND_LLM : IBL_BPE_TRUNC_IMAGEBIND);
    return p;
}

ibl_prepared prepare_depth_thermal(const ibl_model & model, const ibl_input & in) {
    const bool depth = in.mod == IBL_MOD_DEPTH;
    const int S = depth ? model.depth.image_size : model.thermal.image_size;
    ibl_prepared p;
    if (lower_ext(in.what, in.format) == "npy") {
        char expect[64];
        snprintf(expect, sizeof(expect), "(1, %d, %d)", S, S);
        p.data = npy_item(in, (int64_t) S * S, expect);
    } else if (depth) {
        // Fixture convention: 16-bit PNG in millimetres → metres.
        p.data = ibl_depth_preprocess(ibl_image_decode_gray16(in.bytes.data(), in.bytes.size(), in.what), S);
    } else {
        // Fixture convention: 8-bit grayscale / 255.
        p.data = ibl_thermal_preprocess(ibl_image_decode_gray8(in.bytes.data(), in.bytes.size(), in.what), S);
    }
    return p;
}

}  // namespace

static ibl_prepared prepare_any(const ibl_model & model, const ibl_input & in, const ibl_embed_options & opt);

// Every preprocessing error names its input, even those raised by code that never saw the name.
ibl_prepared ibl_prepare(const ibl_model & model, const ibl_input & in, const ibl_embed_options & opt) {
    try {
        return prepare_any(model, in, opt);
    } catch (const ibl_error & e) {
        if (std::string(e.what()).find(in.what) != std::string::npos) throw;
        throw ibl_error(e.code, in.what + ": " + e.what());
    }
}

static ibl_prepared prepare_any(const ibl_model & model, const ibl_input & in, const ibl_embed_options & opt) {
    if (!model.mod(in.mod).present) {
        ibl_throw("ERR_MODALITY_MISSING", "%s: the encoder %s has no %s modality", in.what.c_str(), model.path.c_str(),
                  ibl_modality_get(in.mod).name);
    }
    if (in.is_tensor) return prepare_tensor(model, in);
    switch (in.mod) {
        case IBL_MOD_POINT:   return prepare_points(model, in);
        case IBL_MOD_IMU:     return prepare_imu(model, in);
        case IBL_MOD_DEPTH:
        case IBL_MOD_THERMAL: return prepare_depth_thermal(model, in);
        case IBL_MOD_VISION:  return in.clips.empty() ? prepare_image(model, in) : prepare_video(model, in);
        case IBL_MOD_AUDIO:   return prepare_audio(model, in);
        case IBL_MOD_TEXT:    return prepare_text(model, in, opt);
        default: break;
    }
    ibl_throw("ERR_INPUT_FORMAT", "%s: %s input of this kind is not supported yet", in.what.c_str(), ibl_modality_get(in.mod).name);
}

std::vector<ibl_embedding> ibl_embed(ibl_model & model, const std::vector<ibl_input> & inputs, const ibl_embed_options & opt,
                                     const std::atomic<bool> * abort_flag, const std::function<void(int, int)> & progress) {
    std::vector<ibl_prepared> prepared;
    prepared.reserve(inputs.size());
    int total = 0;
    for (const auto & in : inputs) {
        if (abort_flag && abort_flag->load()) ibl_throw("ERR_ABORTED", "embedding aborted");
        prepared.push_back(ibl_prepare(model, in, opt));
        total += prepared.back().n_clips;
    }
    const int out_dim = model.out_dim;
    std::vector<std::vector<float>> raw(inputs.size());
    int done = 0;
    // Same-modality inputs share graphs of up to max_batch items.
    for (int m = 0; m < IBL_MOD_COUNT; ++m) {
        ibl_encoder_batch batch;
        batch.mod = (ibl_modality) m;
        std::vector<std::pair<size_t, int>> owners;  // (input index, items) in batch order
        auto flush = [&] {
            if (batch.n == 0) return;
            const std::vector<float> out = ibl_encode(model, batch, abort_flag);
            size_t off = 0;
            for (const auto & [idx, n] : owners) {
                raw[idx].insert(raw[idx].end(), out.begin() + off, out.begin() + off + (size_t) n * out_dim);
                off += (size_t) n * out_dim;
            }
            done += batch.n;
            if (progress) progress(done, total);
            batch = ibl_encoder_batch();
            batch.mod = (ibl_modality) m;
            owners.clear();
        };
        for (size_t i = 0; i < inputs.size(); ++i) {
            if (inputs[i].mod != m) continue;
            const ibl_prepared & p = prepared[i];
            const int64_t item = ibl_encoder_item_size(model, (ibl_modality) m);
            const bool point = m == IBL_MOD_POINT;
            // Clips of one input may be split across graphs; raw[] collects them in order.
            for (int c = 0; c < p.n_clips; ++c) {
                if (m == IBL_MOD_TEXT) {
                    batch.ids.insert(batch.ids.end(), p.ids.begin() + c * item, p.ids.begin() + (c + 1) * item);
                } else {
                    batch.data.insert(batch.data.end(), p.data.begin() + c * item, p.data.begin() + (c + 1) * item);
                }
                if (point) batch.centers.insert(batch.centers.end(), p.centers.begin(), p.centers.end());
                batch.n++;
                if (!owners.empty() && owners.back().first == i) owners.back().second++;
                else owners.emplace_back(i, 1);
                if (batch.n >= std::max(1, opt.max_batch)) flush();
            }
        }
        flush();
    }
    std::vector<ibl_embedding> result(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
        ibl_embedding & e = result[i];
        e.mod = inputs[i].mod;
        e.n_clips = prepared[i].n_clips;
        ibl_postprocess(model, e.mod, raw[i].data(), e.n_clips, out_dim, e.raw, e.scaled);
        for (float v : e.scaled) {
            if (!std::isfinite(v)) {
                ibl_throw("ERR_NON_FINITE", "%s: the %s encoder's output is not finite (the model %s holds values out of range for this input)",
                          inputs[i].what.c_str(), ibl_modality_get(e.mod).name, model.path.c_str());
            }
        }
        double ss = 0;
        for (float v : e.scaled) ss += (double) v * v;
        const double inv = 1.0 / std::max(std::sqrt(ss), 1e-12);
        e.unit.resize(out_dim);
        for (int k = 0; k < out_dim; ++k) e.unit[k] = (float) (e.scaled[k] * inv);
    }
    return result;
}
