// Audio preprocessing against the upstream fixtures (fixtures README 4.3): WAV decoding, torchaudio's
// resampler, clip boundaries, the Kaldi filterbank alone, and the whole pipeline from the 16 kHz
// waveform and from the original WAV.
#include "ibl_audio.h"
#include "ibl_test.h"

#include "nlohmann/json.hpp"

#include <chrono>
#include <cstring>
#include <fstream>

static const char * AUDIO_CASES[] = {"dog_audio", "car_audio", "bird_audio"};

// A WAV file in memory: `tag` 1 (PCM) / 3 (float) / 6 (A-law); extensible wraps it in WAVE_FORMAT_EXTENSIBLE.
static std::vector<uint8_t> make_wav(int tag, int bits, int channels, int rate, const std::vector<uint8_t> & data,
                                     bool extensible = false) {
    std::vector<uint8_t> b;
    auto put = [&](uint64_t v, int n) { for (int i = 0; i < n; ++i) b.push_back((uint8_t) (v >> (8 * i))); };
    auto tag4 = [&](const char * s) { b.insert(b.end(), s, s + 4); };
    const int fmt_size = extensible ? 40 : 16;
    tag4("RIFF");
    put(4 + 8 + fmt_size + 8 + data.size(), 4);
    tag4("WAVE");
    tag4("fmt ");
    put(fmt_size, 4);
    put(extensible ? 0xFFFE : tag, 2);
    put(channels, 2);
    put(rate, 4);
    put((uint64_t) rate * channels * bits / 8, 4);
    put(channels * bits / 8, 2);
    put(bits, 2);
    if (extensible) {
        put(22, 2);
        put(bits, 2);
        put(0, 4);
        put(tag, 2);  // SubFormat GUID: format code + KSDATAFORMAT suffix
        const uint8_t guid_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
        b.insert(b.end(), guid_tail, guid_tail + 14);
    }
    tag4("LIST");  // an unrelated chunk the reader must skip (odd size: padded)
    put(3, 4);
    put(0x616263, 3);
    put(0, 1);
    tag4("data");
    put(data.size(), 4);
    b.insert(b.end(), data.begin(), data.end());
    return b;
}

static std::vector<uint8_t> le_bytes(const std::vector<int64_t> & v, int n) {
    std::vector<uint8_t> b;
    for (int64_t x : v) for (int i = 0; i < n; ++i) b.push_back((uint8_t) ((uint64_t) x >> (8 * i)));
    return b;
}

static void test_wav_formats(ibl_test & t) {
    // PCM 16 stereo: interleaved L R, value / 32768
    const std::vector<uint8_t> s16 = make_wav(1, 16, 2, 8000, le_bytes({-32768, 32767, 16384, -1}, 2));
    ibl_wave w = ibl_wav_parse(s16.data(), s16.size(), "<s16>");
    t.check(w.sample_rate == 8000 && w.channels.size() == 2 && w.n_samples() == 2 && w.channels[0][0] == -1.0f &&
            w.channels[1][0] == 32767 / 32768.0f && w.channels[0][1] == 0.5f && w.channels[1][1] == -1 / 32768.0f,
            "wav: PCM16 stereo de-interleaved, / 32768");
    auto parse = [&](const std::vector<uint8_t> & b) { return ibl_wav_parse(b.data(), b.size(), "<mem>"); };
    w = parse(make_wav(1, 8, 1, 11025, {0, 128, 255}));
    t.check(w.channels[0] == std::vector<float>({-1.0f, 0.0f, 127 / 128.0f}), "wav: PCM8 unsigned (v - 128) / 128");
    w = parse(make_wav(1, 24, 1, 48000, le_bytes({-8388608, 4194304, 1}, 3)));
    t.check(w.channels[0] == std::vector<float>({-1.0f, 0.5f, 1 / 8388608.0f}), "wav: PCM24 / 2^23 (sign extended)");
    w = parse(make_wav(1, 32, 1, 48000, le_bytes({INT32_MIN, 1 << 30, 1}, 4)));
    t.check(w.channels[0] == std::vector<float>({-1.0f, 0.5f, 1.0f / 2147483648.0f}), "wav: PCM32 / 2^31");
    std::vector<uint8_t> f32(8);
    const float fv[2] = {0.25f, -1.5f};
    memcpy(f32.data(), fv, 8);
    w = parse(make_wav(3, 32, 2, 44100, f32));
    t.check(w.channels.size() == 2 && w.channels[0][0] == 0.25f && w.channels[1][0] == -1.5f, "wav: float32 as stored");
    std::vector<uint8_t> f64(16);
    const double dv[2] = {0.125, 1.0 / 3.0};
    memcpy(f64.data(), dv, 16);
    w = parse(make_wav(3, 64, 1, 44100, f64));
    t.check(w.channels[0] == std::vector<float>({0.125f, (float) (1.0 / 3.0)}), "wav: float64 -> float32");
    w = parse(make_wav(1, 24, 3, 96000, le_bytes({1, 2, 3, 4, 5, 6}, 3), true));
    t.check(w.channels.size() == 3 && w.n_samples() == 2 && w.channels[2][1] == 6 / 8388608.0f && w.sample_rate == 96000,
            "wav: WAVE_FORMAT_EXTENSIBLE PCM24, 3 channels");
    // a data chunk that claims more bytes than the file has (streamed / cut-off writer): whole frames kept
    std::vector<uint8_t> cut = make_wav(1, 16, 2, 8000, le_bytes({1, 2, 3, 4, 5, 6}, 2));
    cut.resize(cut.size() - 3);
    w = parse(cut);
    t.check(w.n_samples() == 2 && w.channels[1][1] == 4 / 32768.0f, "wav: data chunk past the end -> whole frames kept");
    // the fixtures' own 16 kHz WAV (mono PCM16)
    const ibl_wave w16 = ibl_wav_load(t.asset("dog_audio_16k.wav"));
    t.check(w16.sample_rate == 16000 && w16.channels.size() == 1 && w16.n_samples() == 41764, "wav: dog_audio_16k.wav 16 kHz mono, 41764 samples");
}

static void test_wav_errors(ibl_test & t) {
    auto parse = [](const std::vector<uint8_t> & b, const char * what) { ibl_wav_parse(b.data(), b.size(), what); };
    t.check_throws([&] { parse(make_wav(1, 16, 2, 16000, {}), "empty.wav"); }, "ERR_AUDIO_EMPTY", "empty.wav", "wav: 0 data bytes");
    t.check_throws([&] { parse(make_wav(1, 16, 2, 16000, {1, 2}), "half.wav"); }, "ERR_AUDIO_EMPTY", "half.wav", "wav: less than one frame");
    const std::vector<uint8_t> garbage = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!', 0, 1, 2, 3};
    t.check_throws([&] { parse(garbage, "garbage.bin"); }, "ERR_AUDIO_DECODE", "garbage.bin", "wav: garbage bytes");
    t.check_throws([&] { parse({}, "zero.wav"); }, "ERR_AUDIO_DECODE", "zero.wav", "wav: 0 bytes");
    const std::vector<uint8_t> real = ibl_read_file(t.asset("dog_audio.wav"));
    for (size_t n : {6, 20, 40}) {
        const std::vector<uint8_t> head(real.begin(), real.begin() + n);
        t.check_throws([&] { parse(head, "cut.wav"); }, "ERR_AUDIO_DECODE", "truncated", "wav: header truncated to " + std::to_string(n) + " bytes");
    }
    t.check_throws([&] { parse(make_wav(6, 8, 1, 8000, {1, 2, 3}), "alaw.wav"); }, "ERR_AUDIO_UNSUPPORTED", "A-law", "wav: A-law is unsupported");
    t.check_throws([&] { parse(make_wav(1, 12, 1, 8000, {1, 2, 3}), "pcm12.wav"); }, "ERR_AUDIO_UNSUPPORTED", "pcm12.wav", "wav: 12-bit PCM is unsupported");
    t.check_throws([&] { parse(make_wav(3, 16, 1, 8000, {1, 2}), "f16.wav"); }, "ERR_AUDIO_UNSUPPORTED", "f16.wav", "wav: 16-bit float is unsupported");
    t.check_throws([&] { parse(make_wav(1, 16, 0, 8000, {1, 2}), "noch.wav"); }, "ERR_AUDIO_DECODE", "0 channels", "wav: 0 channels");
    t.check_throws([&] { parse(make_wav(1, 16, 1, 0, {1, 2}), "norate.wav"); }, "ERR_AUDIO_UNSUPPORTED", "sample rate", "wav: 0 Hz");
    std::vector<uint8_t> rifx = make_wav(1, 16, 1, 8000, {1, 2});
    memcpy(rifx.data(), "RIFX", 4);
    t.check_throws([&] { parse(rifx, "be.wav"); }, "ERR_AUDIO_UNSUPPORTED", "RIFX", "wav: big-endian RIFX is unsupported");
    t.check_throws([&] { ibl_wav_load(t.asset("nope.wav")); }, "ERR_FILE_NOT_FOUND", "nope.wav", "wav: missing file");
}

// Resampled channel c of an npy (channels, samples).
static std::vector<float> npy_row(const ibl_npy & a, const std::vector<float> & v, int64_t c) {
    const int64_t n = a.shape[1];
    return std::vector<float>(v.begin() + c * n, v.begin() + (c + 1) * n);
}

static void test_resampler(ibl_test & t) {
    double worst = 0;
    for (const char * name : {"dog_audio", "car_audio", "bird_audio", "girl_bgm"}) {
        const ibl_wave w = ibl_wav_load(t.asset(std::string(name) + ".wav"));
        const ibl_npy ref = ibl_npy_load(t.asset(std::string(name) + "_16k.npy"));
        const std::vector<float> exp = ref.to_f32();
        const ibl_resampler r = ibl_resampler_init(w.sample_rate, 16000);
        t.check(ref.shape.size() == 2 && ref.shape[0] == (int64_t) w.channels.size(), std::string("resample: ") + name + " channel count");
        for (size_t c = 0; c < w.channels.size(); ++c) {
            const std::vector<float> got = ibl_resample(r, w.channels[c].data(), w.n_samples());
            const std::vector<float> e = npy_row(ref, exp, (int64_t) c);
            double md = 0, mx = 0;
            for (size_t i = 0; i < std::min(got.size(), e.size()); ++i) {
                md = std::max(md, (double) std::fabs(got[i] - e[i]));
                mx = std::max(mx, (double) std::fabs(e[i]));
            }
            worst = std::max(worst, md / mx);
            t.check_close(got, e, std::string("resample: ") + name + " " + std::to_string(w.sample_rate) + " Hz -> 16 kHz, channel " + std::to_string(c));
        }
    }
    printf("     resample: worst max diff %.3g of max\n", worst);
    const ibl_resampler r = ibl_resampler_init(44100, 16000);
    t.check(r.orig == 441 && r.next == 160 && r.width == 17 && ibl_resampled_length(r, 115110) == 41764,
            "resample: 44100 -> 16000 reduces to 441 -> 160, width 17, 115110 -> 41764 samples");
    // Other rate pairs (no fixture): a 1 kHz sine stays a 1 kHz sine away from the edges.
    for (int rate : {8000, 11025, 44101, 48000, 96000}) {
        const ibl_resampler rr = ibl_resampler_init(rate, 16000);
        std::vector<float> x(rate);
        for (int i = 0; i < rate; ++i) x[i] = (float) std::sin(2 * 3.14159265358979 * 1000.0 * i / rate);
        const std::vector<float> y = ibl_resample(rr, x.data(), (int64_t) x.size());
        double md = 0;
        for (size_t m = 1000; m + 1000 < y.size(); ++m) md = std::max(md, std::fabs(y[m] - std::sin(2 * 3.14159265358979 * 1000.0 * m / 16000)));
        char what[96];
        snprintf(what, sizeof(what), "resample: 1 kHz sine %d Hz -> 16 kHz, %zu samples, max error %.1e", rate, y.size(), md);
        t.check(y.size() == 16000 && md < 2e-3, what);
    }
}

static nlohmann::json load_manifest(ibl_test & t) {
    std::ifstream f(t.tiny("manifest.json"));
    return nlohmann::json::parse(f);
}

static const nlohmann::json * find_case(const nlohmann::json & m, const std::string & name) {
    for (const auto & c : m["imagebind_cases"]) if (c["name"] == name) return &c;
    return nullptr;
}

static void test_clips(ibl_test & t, const nlohmann::json & m) {
    for (const char * name : AUDIO_CASES) {
        const nlohmann::json * c = find_case(m, std::string("audio_") + name);
        if (!t.check(c != nullptr, std::string("clips: manifest has audio_") + name)) continue;
        const auto & pre = (*c)["preprocess"];
        const int64_t n = pre["resampled_samples"].get<int64_t>();
        const auto clips = ibl_audio_clips(n, 16000, 2.0, 3);
        bool ok = clips.size() == pre["clips"].size();
        std::string got;
        for (size_t k = 0; ok && k < clips.size(); ++k) {
            ok &= clips[k].start == pre["clips"][k]["sample_start"].get<int64_t>() && clips[k].end == pre["clips"][k]["sample_end"].get<int64_t>();
            got += " [" + std::to_string(clips[k].start) + ", " + std::to_string(clips[k].end) + ")";
        }
        t.check(ok, std::string("clips: ") + name + " (" + std::to_string(n) + " samples):" + got);
    }
    // Cases worked out with Python's fractions.Fraction, as pytorchvideo does.
    struct clip_case { int64_t n; int rate; double dur; int clips; std::vector<int64_t> exp; };
    const clip_case cases[] = {
        {277552, 16000, 2.0, 3, {0, 32000, 122776, 154776, 245552, 277552}},
        {277552, 16000, 2.5, 4, {0, 40000, 79184, 119184, 158368, 198368, 237552, 277552}},
        {1234567, 16000, 0.1, 5, {0, 1600, 308241, 309841, 616483, 618083, 924725, 926325, 1232967, 1234567}},
        {12345, 16000, 2.0, 3, {0, 32000, 0, 32000, 0, 32000}},
        {99999, 16000, 2.0, 1, {0, 32000}},
        {50001, 22050, 1.7, 7, {0, 37484, 2086, 39570, 4172, 41656, 6258, 43742, 8344, 45829, 10430, 47915, 12516, 50001}},
    };
    for (const auto & cc : cases) {
        const auto clips = ibl_audio_clips(cc.n, cc.rate, cc.dur, cc.clips);
        std::vector<int64_t> got;
        for (const auto & c : clips) { got.push_back(c.start); got.push_back(c.end); }
        char what[128];
        snprintf(what, sizeof(what), "clips: %lld samples at %d Hz, %d clips of %g s (exact rationals)", (long long) cc.n, cc.rate, cc.clips, cc.dur);
        t.check(got == cc.exp, what);
    }
    t.check_throws([] { ibl_audio_clips(100, 16000, 0.0, 3); }, "ERR_INVALID_ARG", "clip duration", "clips: zero clip duration");
    t.check_throws([] { ibl_audio_clips(100, 16000, 2.0, 0); }, "ERR_INVALID_ARG", "clips", "clips: zero clips");
}

// Log-mel comparison. The reference filterbank was computed in float32 (torch.fft.rfft, sgemm): an entry far
// below the loudest mel bin of its frame carries that computation's rounding noise, ~1e-3 in log units at
// 80-100 dB down (measured: reference vs float64, and vs a pocketfft float32 port, differ by that much there,
// while within 60 dB all three agree to < 1e-4). No port reproduces that noise short of the same FFT code.
// So: the f32 tolerance on every entry within 80 dB of its frame's peak, and `rel_all` on all entries.
// Layout (clips, n_mels, frames); the log-mel value of an entry is v * scale + offset.
static void check_logmel(ibl_test & t, const std::vector<float> & got, const std::vector<float> & exp, int n_mels,
                         int frames, float scale, float offset, const std::string & what, double rel_all) {
    const double range = 8.0 * std::log(10.0);  // 80 dB of power in natural-log units
    std::vector<float> g_in, e_in;
    const size_t per_clip = (size_t) n_mels * frames;
    for (size_t c = 0; c + per_clip <= exp.size() && got.size() == exp.size(); c += per_clip) {
        for (int f = 0; f < frames; ++f) {
            double peak = -1e30;
            for (int m = 0; m < n_mels; ++m) peak = std::max(peak, (double) exp[c + (size_t) m * frames + f] * scale + offset);
            for (int m = 0; m < n_mels; ++m) {
                const size_t i = c + (size_t) m * frames + f;
                if (peak - ((double) exp[i] * scale + offset) <= range) {
                    g_in.push_back(got[i]);
                    e_in.push_back(exp[i]);
                }
            }
        }
    }
    t.check_close(g_in, e_in, what + ", entries within 80 dB of their frame's peak (" + std::to_string(e_in.size()) + "/" +
                              std::to_string(exp.size()) + ")");
    char buf[64];
    snprintf(buf, sizeof(buf), ", all entries (bound %.1e)", rel_all);
    t.check_close(got, exp, what + buf, rel_all);
}

static void test_fbank(ibl_test & t) {
    const ibl_fbank fb = ibl_fbank_init(16000, 128);
    t.check(fb.frame_length == 400 && fb.frame_shift == 160 && fb.n_fft == 512 && ibl_fbank_frames(fb, 32000) == 198,
            "fbank: 400-sample window, 160 shift, FFT 512, 198 frames for 2 s");
    for (const char * name : AUDIO_CASES) {
        const ibl_npy in = ibl_npy_load(t.tiny(std::string("inputs/audio_") + name + ".fbank_input.npy"));
        const ibl_npy ref = ibl_npy_load(t.tiny(std::string("expected/audio_") + name + ".fbank.npy"));
        const std::vector<float> x = in.to_f32();
        std::vector<float> got;
        for (int64_t k = 0; k < in.shape[0]; ++k) {
            const std::vector<float> s = ibl_audio_melspec(fb, x.data() + k * in.shape[1], in.shape[1], 204);
            got.insert(got.end(), s.begin(), s.end());
        }
        check_logmel(t, got, ref.to_f32(), 128, 204, 1.0f, 0.0f, std::string("fbank: ") + name + " (3, 1, 128, 204)", 2e-4);
    }
    t.check_throws([&] { std::vector<float> x(399, 0.1f); ibl_fbank_compute(fb, x.data(), 399); }, "ERR_AUDIO_TOO_SHORT", "399",
                   "fbank: 399 samples is less than one window");
}

static void test_pipeline(ibl_test & t) {
    auto ctx = ibl_audio_ctx_init(ibl_audio_params());
    for (const char * name : AUDIO_CASES) {
        const std::vector<float> exp = ibl_npy_load(t.tiny(std::string("inputs/audio_") + name + ".npy")).to_f32();
        // from the exact upstream 16 kHz waveform
        const ibl_npy w16 = ibl_npy_load(t.asset(std::string(name) + "_16k.npy"));
        const std::vector<float> v16 = w16.to_f32();
        std::vector<std::vector<float>> ch;
        for (int64_t c = 0; c < w16.shape[0]; ++c) ch.push_back(npy_row(w16, v16, c));
        const ibl_audio_params & p = ctx->params;
        ibl_audio_trace tr;
        check_logmel(t, ibl_audio_preprocess(*ctx, ch, 16000, &tr), exp, 128, 204, p.std, p.mean,
                     std::string("pipeline: ") + name + "_16k.npy -> (3, 1, 128, 204)", 2e-4);
        // the in-place mean subtraction across overlapping clips, against the signal upstream's fbank read
        const std::vector<float> fin = ibl_npy_load(t.tiny(std::string("inputs/audio_") + name + ".fbank_input.npy")).to_f32();
        std::vector<float> got_in;
        for (const auto & c : tr.fbank_inputs) got_in.insert(got_in.end(), c.begin(), c.end());
        t.check_close(got_in, fin, std::string("pipeline: ") + name + " fbank inputs after the in-place clip-mean subtractions", 1e-6);
        // from the original 44.1 kHz WAV, through our decoder and resampler (3.5e-7 from torchaudio's waveform,
        // which moves the noise-level entries a little more)
        const ibl_wave w = ibl_wav_load(t.asset(std::string(name) + ".wav"));
        check_logmel(t, ibl_audio_preprocess(*ctx, w.channels, w.sample_rate), exp, 128, 204, p.std, p.mean,
                     std::string("pipeline: ") + name + ".wav (44.1 kHz) -> (3, 1, 128, 204)", 4e-4);
    }
    // Errors on user data.
    t.check_throws([&] { ibl_audio_preprocess(*ctx, {std::vector<float>(300, 0.1f)}, 16000); }, "ERR_AUDIO_TOO_SHORT", "filterbank window",
                   "pipeline: 300 samples (< 25 ms)");
    t.check_throws([&] { ibl_audio_preprocess(*ctx, {std::vector<float>()}, 16000); }, "ERR_AUDIO_EMPTY", "no samples", "pipeline: no samples");
    t.check_throws([&] { ibl_audio_preprocess(*ctx, {}, 16000); }, "ERR_INVALID_ARG", "no channels", "pipeline: no channels");
    t.check_throws([&] { ibl_audio_preprocess(*ctx, {std::vector<float>(800), std::vector<float>(799)}, 16000); }, "ERR_INVALID_ARG", "channel 1",
                   "pipeline: channels of different lengths");
    std::vector<float> nan(4000, 0.0f);
    nan[17] = NAN;
    t.check_throws([&] { ibl_audio_preprocess(*ctx, {nan}, 16000); }, "ERR_AUDIO_INVALID", "not finite", "pipeline: NaN sample");
    t.check_throws([&] { ibl_audio_preprocess(*ctx, {nan}, 0); }, "ERR_AUDIO_UNSUPPORTED", "0 Hz", "pipeline: 0 Hz");
    ibl_audio_params bad;
    bad.std = 0.0f;
    t.check_throws([&] { ibl_audio_ctx_init(bad); }, "ERR_INVALID_ARG", "std", "pipeline: std 0 rejected");
    // Parameters other than the defaults flow through: 2 clips, 100 frames, 64 mel bins.
    ibl_audio_params p;
    p.clips = 2;
    p.target_length = 100;
    p.num_mel_bins = 64;
    const std::vector<float> small = ibl_audio_preprocess({std::vector<float>(40000, 0.0f)}, 16000, p);
    t.check(small.size() == 2 * 64 * 100, "pipeline: 2 clips x 64 mel x 100 frames from parameters");
}

static void test_speed(ibl_test & t) {
    // 10 s of 44.1 kHz stereo (a chirp plus noise-like content), resampled and preprocessed.
    const int rate = 44100, n = 10 * rate;
    std::vector<std::vector<float>> ch(2, std::vector<float>(n));
    uint32_t s = 12345;
    for (int i = 0; i < n; ++i) {
        s = s * 1664525u + 1013904223u;
        const double tt = (double) i / rate;
        ch[0][i] = (float) (0.5 * std::sin(2 * 3.14159265358979 * (200 + 300 * tt) * tt) + ((s >> 8) / 16777216.0 - 0.5) * 0.01);
        ch[1][i] = 0.7f * ch[0][i];
    }
    auto ctx = ibl_audio_ctx_init(ibl_audio_params());
    ibl_audio_ctx_resampler(*ctx, rate);  // tables built once, outside the timing
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<float> out = ibl_audio_preprocess(*ctx, ch, rate);
    const auto t1 = std::chrono::steady_clock::now();
    const double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    printf("     speed: 10 s 44.1 kHz stereo -> (3, 1, 128, 204) in %.1f ms\n", ms);
    t.check(out.size() == 3 * 128 * 204, "speed: output shape (3, 1, 128, 204)");
}

void test_audio(ibl_test & t) {
    test_wav_formats(t);
    test_wav_errors(t);
    test_resampler(t);
    const nlohmann::json m = load_manifest(t);
    test_clips(t, m);
    test_fbank(t);
    test_pipeline(t);
    test_speed(t);
}
