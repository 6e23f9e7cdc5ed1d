#include "ibl_audio.h"

#include "ibl_error.h"
#include "ibl_npy.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <numeric>

static constexpr double IBL_PI = 3.14159265358979323846;

// ============================================================================================
// WAV
// ============================================================================================

static uint16_t rd_u16(const uint8_t * p) { return (uint16_t) (p[0] | (p[1] << 8)); }
static uint32_t rd_u32(const uint8_t * p) {
    return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

enum wav_encoding { WAV_PCM = 1, WAV_FLOAT = 3, WAV_EXTENSIBLE = 0xFFFE };

struct wav_format {
    int      tag = 0;          // WAV_PCM or WAV_FLOAT after resolving WAVE_FORMAT_EXTENSIBLE
    int      channels = 0;
    uint32_t sample_rate = 0;
    int      bits = 0;         // container bits per sample
    int      block_align = 0;  // bytes per frame
};

static const char * wav_tag_name(int tag) {
    switch (tag) {
        case 0x0002: return " (MS ADPCM)";
        case 0x0006: return " (A-law)";
        case 0x0007: return " (mu-law)";
        case 0x0011: return " (IMA ADPCM)";
        case 0x0055: return " (MP3)";
        default:     return "";
    }
}

static wav_format wav_parse_fmt(const uint8_t * p, uint32_t size, const std::string & what) {
    if (size < 16) ibl_throw("ERR_AUDIO_DECODE", "%s: malformed WAV: 'fmt ' chunk of %u bytes", what.c_str(), size);
    wav_format f;
    f.tag         = rd_u16(p);
    f.channels    = rd_u16(p + 2);
    f.sample_rate = rd_u32(p + 4);
    f.block_align = rd_u16(p + 12);
    f.bits        = rd_u16(p + 14);
    if (f.tag == WAV_EXTENSIBLE) {
        // The real format code is the first two bytes of the SubFormat GUID.
        if (size < 40) ibl_throw("ERR_AUDIO_DECODE", "%s: malformed WAV: WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk of %u bytes", what.c_str(), size);
        f.tag = rd_u16(p + 24);
    }
    if (f.channels == 0) ibl_throw("ERR_AUDIO_DECODE", "%s: malformed WAV: 0 channels", what.c_str());
    if (f.sample_rate < (uint32_t) IBL_AUDIO_MIN_RATE || f.sample_rate > (uint32_t) IBL_AUDIO_MAX_RATE) {
        ibl_throw("ERR_AUDIO_UNSUPPORTED", "%s: unsupported WAV sample rate %u Hz (expected %d to %d)", what.c_str(), f.sample_rate, IBL_AUDIO_MIN_RATE, IBL_AUDIO_MAX_RATE);
    }
    const bool pcm_ok   = f.tag == WAV_PCM && (f.bits == 8 || f.bits == 16 || f.bits == 24 || f.bits == 32);
    const bool float_ok = f.tag == WAV_FLOAT && (f.bits == 32 || f.bits == 64);
    if (!pcm_ok && !float_ok) {
        ibl_throw("ERR_AUDIO_UNSUPPORTED", "%s: unsupported WAV encoding: format 0x%04x%s, %d bits per sample "
                  "(expected PCM 8/16/24/32-bit or IEEE float 32/64-bit)", what.c_str(), f.tag, wav_tag_name(f.tag), f.bits);
    }
    if (f.block_align != f.channels * (f.bits / 8)) {
        ibl_throw("ERR_AUDIO_UNSUPPORTED", "%s: unsupported WAV layout: block align %d for %d channels of %d bits",
                  what.c_str(), f.block_align, f.channels, f.bits);
    }
    return f;
}

// One sample of the given encoding -> float32, scaled as torchaudio.load(normalize=True).
static float wav_sample(const uint8_t * p, const wav_format & f) {
    if (f.tag == WAV_FLOAT) {
        if (f.bits == 32) {
            const uint32_t u = rd_u32(p);
            float v;
            memcpy(&v, &u, 4);
            return v;
        }
        const uint64_t u = (uint64_t) rd_u32(p) | ((uint64_t) rd_u32(p + 4) << 32);
        double v;
        memcpy(&v, &u, 8);
        return (float) v;
    }
    switch (f.bits) {
        case 8:  return (float) ((int) p[0] - 128) / 128.0f;  // unsigned 8-bit
        case 16: return (float) (int16_t) rd_u16(p) / 32768.0f;
        case 24: {
            const int32_t v = (int32_t) (((uint32_t) p[0] << 8) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 24)) >> 8;
            return (float) v / 8388608.0f;
        }
        default: return (float) ((double) (int32_t) rd_u32(p) / 2147483648.0);
    }
}

ibl_wave ibl_wav_parse(const uint8_t * bytes, size_t size, const std::string & what) {
    const char * w = what.c_str();
    if (size >= 4 && (memcmp(bytes, "RIFX", 4) == 0 || memcmp(bytes, "RF64", 4) == 0)) {
        ibl_throw("ERR_AUDIO_UNSUPPORTED", "%s: unsupported WAV variant '%.4s' (only little-endian RIFF/WAVE)", w, (const char *) bytes);
    }
    if (size < 12 || memcmp(bytes, "RIFF", 4) != 0 || memcmp(bytes + 8, "WAVE", 4) != 0) {
        if (size >= 4 && memcmp(bytes, "RIFF", 4) == 0 && size < 12) ibl_throw("ERR_AUDIO_DECODE", "%s: truncated WAV header (%zu bytes)", w, size);
        ibl_throw("ERR_AUDIO_DECODE", "%s: not a WAV file (no RIFF/WAVE header)", w);
    }
    wav_format fmt;
    bool have_fmt = false;
    const uint8_t * data = nullptr;
    uint64_t data_size = 0;
    uint64_t pos = 12;
    // The RIFF size field is often wrong in streamed files: walk the chunks up to the real end instead.
    while (pos + 8 <= size) {
        const uint8_t * c = bytes + pos;
        const uint64_t csize = rd_u32(c + 4), body = pos + 8, avail = size - body;
        if (memcmp(c, "fmt ", 4) == 0) {
            if (csize > avail) ibl_throw("ERR_AUDIO_DECODE", "%s: truncated WAV header ('fmt ' chunk cut off)", w);
            fmt = wav_parse_fmt(c + 8, (uint32_t) csize, what);
            have_fmt = true;
        } else if (memcmp(c, "data", 4) == 0) {
            if (!have_fmt) ibl_throw("ERR_AUDIO_DECODE", "%s: malformed WAV: 'data' chunk before 'fmt ' chunk", w);
            data = c + 8;
            data_size = std::min(csize, avail);  // streamed (0xFFFFFFFF) or cut-off data: keep what is there
            break;
        }
        pos = body + csize + (csize & 1);
    }
    if (!have_fmt) ibl_throw("ERR_AUDIO_DECODE", "%s: truncated or malformed WAV header (no 'fmt ' chunk)", w);
    if (!data)     ibl_throw("ERR_AUDIO_DECODE", "%s: truncated or malformed WAV (no 'data' chunk)", w);

    const int64_t frames = (int64_t) (data_size / (uint64_t) fmt.block_align);
    if (frames == 0) ibl_throw("ERR_AUDIO_EMPTY", "%s: WAV has no samples", w);
    ibl_wave out;
    out.sample_rate = (int) fmt.sample_rate;
    out.channels.assign(fmt.channels, std::vector<float>(frames));
    const int bps = fmt.bits / 8;
    for (int64_t i = 0; i < frames; ++i) {
        const uint8_t * frame = data + i * fmt.block_align;
        for (int ch = 0; ch < fmt.channels; ++ch) out.channels[ch][i] = wav_sample(frame + ch * bps, fmt);
    }
    return out;
}

ibl_wave ibl_wav_load(const std::string & path) {
    const std::vector<uint8_t> bytes = ibl_read_file(path);
    return ibl_wav_parse(bytes.data(), bytes.size(), path);
}

// ============================================================================================
// Resampler
// ============================================================================================

// Kernel value of tap i (input offset i / orig) for output phase j, in float32 step by step like upstream.
// Returns false when the time is clamped to +-6: those taps weigh ~1e-22 and are skipped.
// ref: torchaudio.functional._get_sinc_resample_kernel (sinc_interp_hann, lowpass_filter_width 6)
static bool resample_tap(int64_t i, int64_t j, int64_t orig, int64_t next, float base, float scale, float & k) {
    const float pi = (float) IBL_PI;
    float t = (float) (-j) / (float) next + (float) i / (float) orig;
    t *= base;
    if (!(t > -6.0f && t < 6.0f)) return false;
    float w = std::cos(t * pi / 6.0f / 2.0f);
    w = w * w;
    const float tp = t * pi;
    const float s = tp == 0.0f ? 1.0f : std::sin(tp) / tp;
    k = s * (w * scale);
    return true;
}

ibl_resampler ibl_resampler_init(int orig_rate, int new_rate) {
    if (orig_rate <= 0 || orig_rate > IBL_AUDIO_MAX_RATE) {
        ibl_throw("ERR_AUDIO_UNSUPPORTED", "unsupported input sample rate %d Hz (expected 1 to %d)", orig_rate, IBL_AUDIO_MAX_RATE);
    }
    if (new_rate <= 0 || new_rate > IBL_AUDIO_MAX_RATE) {
        ibl_throw("ERR_INVALID_ARG", "audio sample rate %d Hz out of range (1 to %d)", new_rate, IBL_AUDIO_MAX_RATE);
    }
    // ref: torchaudio.functional.resample: rates reduced by their gcd, base = min * rolloff (Python float).
    const int64_t g = std::gcd((int64_t) orig_rate, (int64_t) new_rate);
    ibl_resampler r;
    r.orig = orig_rate / g;
    r.next = new_rate / g;
    const double base = (double) std::min(r.orig, r.next) * 0.99;
    r.width = (int64_t) std::ceil((double) (6 * r.orig) / base);
    const float base_f = (float) base, scale_f = (float) (base / (double) r.orig);

    r.first.resize(r.next);
    r.start.assign(1, 0);
    const double half = 6.0 * (double) r.orig / base;  // half the unclamped span, in input samples
    for (int64_t j = 0; j < r.next; ++j) {
        const double centre = (double) j * (double) r.orig / (double) r.next;
        const int64_t lo = std::max(-r.width, (int64_t) std::floor(centre - half) - 2);
        const int64_t hi = std::min(r.width + r.orig - 1, (int64_t) std::ceil(centre + half) + 2);
        bool found = false;
        r.first[j] = 0;
        for (int64_t i = lo; i <= hi; ++i) {
            float k;
            if (!resample_tap(i, j, r.orig, r.next, base_f, scale_f, k)) {
                if (found) break;  // past the unclamped run
                continue;
            }
            if (!found) r.first[j] = i;
            found = true;
            r.taps.push_back(k);
        }
        r.start.push_back((int64_t) r.taps.size());
    }
    return r;
}

int64_t ibl_resampled_length(const ibl_resampler & r, int64_t n) {
    // ceil(next * n / orig) without overflowing next * n
    return (n / r.orig) * r.next + ((n % r.orig) * r.next + r.orig - 1) / r.orig;
}

// ref: torchaudio _apply_sinc_resample_kernel: x zero-padded by width (left) and width + orig (right),
// conv1d with stride orig; output q * next + j = sum_i kernel[j, i] x[q * orig + i - width].
std::vector<float> ibl_resample(const ibl_resampler & r, const float * x, int64_t n) {
    const int64_t n_out = ibl_resampled_length(r, n);
    std::vector<float> y(n_out);
    for (int64_t m = 0; m < n_out; ++m) {
        const int64_t q = m / r.next, j = m % r.next;
        const float * k = r.taps.data() + r.start[j];
        const int64_t cnt = r.start[j + 1] - r.start[j];
        const int64_t x0 = q * r.orig + r.first[j];
        const int64_t u0 = std::max<int64_t>(0, -x0), u1 = std::min<int64_t>(cnt, n - x0);
        double acc = 0.0;
        for (int64_t u = u0; u < u1; ++u) acc += (double) k[u] * (double) x[x0 + u];
        y[m] = (float) acc;
    }
    return y;
}

// ============================================================================================
// Clip boundaries (exact rationals)
// ============================================================================================

// Unsigned big integer (base 2^32 limbs, least significant first): just enough for floor((a * b) / c)
// with a a double's exact binary fraction. Portable (no __int128 on MSVC) and cannot overflow.
struct big_uint {
    std::vector<uint32_t> d;

    explicit big_uint(uint64_t v = 0) {
        while (v) {
            d.push_back((uint32_t) v);
            v >>= 32;
        }
    }
    void mul(uint32_t m) {
        uint64_t carry = 0;
        for (uint32_t & x : d) {
            const uint64_t p = (uint64_t) x * m + carry;
            x = (uint32_t) p;
            carry = p >> 32;
        }
        if (carry) d.push_back((uint32_t) carry);
        trim();
    }
    void add(const big_uint & b) {
        if (d.size() < b.d.size()) d.resize(b.d.size(), 0);
        uint64_t carry = 0;
        for (size_t i = 0; i < d.size(); ++i) {
            const uint64_t s = (uint64_t) d[i] + (i < b.d.size() ? b.d[i] : 0) + carry;
            d[i] = (uint32_t) s;
            carry = s >> 32;
        }
        if (carry) d.push_back((uint32_t) carry);
    }
    void shl(int bits) {
        if (d.empty()) return;
        d.insert(d.begin(), (size_t) (bits / 32), 0u);
        const int b = bits % 32;
        if (b == 0) return;
        uint32_t carry = 0;
        for (uint32_t & x : d) {
            const uint32_t nx = (x << b) | carry;
            carry = x >> (32 - b);
            x = nx;
        }
        if (carry) d.push_back(carry);
    }
    void shr(int bits) {
        const size_t words = (size_t) (bits / 32);
        if (words >= d.size()) { d.clear(); return; }
        d.erase(d.begin(), d.begin() + words);
        const int b = bits % 32;
        if (b) {
            for (size_t i = 0; i < d.size(); ++i) {
                d[i] = (d[i] >> b) | (i + 1 < d.size() ? d[i + 1] << (32 - b) : 0);
            }
        }
        trim();
    }
    void div(uint32_t m) {  // floor division
        uint64_t rem = 0;
        for (size_t i = d.size(); i-- > 0;) {
            const uint64_t cur = (rem << 32) | d[i];
            d[i] = (uint32_t) (cur / m);
            rem = cur % m;
        }
        trim();
    }
    int64_t to_i64() const {
        if (d.size() > 2 || (d.size() == 2 && (d[1] >> 31))) ibl_throw("ERR_INVALID_ARG", "audio clip boundary out of range");
        return (int64_t) ((d.size() > 0 ? (uint64_t) d[0] : 0) | (d.size() > 1 ? (uint64_t) d[1] << 32 : 0));
    }
    void trim() {
        while (!d.empty() && d.back() == 0) d.pop_back();
    }
};

// A finite non-negative double as m * 2^e exactly (Python's Fraction(float)); m = 0 for zero.
static void exact_dyadic(double v, uint64_t & m, int & e) {
    m = 0;
    e = 0;
    if (v == 0.0) return;
    int ex;
    const double f = std::frexp(v, &ex);  // v = f * 2^ex, f in [0.5, 1)
    m = (uint64_t) std::ldexp(f, 53);
    e = ex - 53;
    while ((m & 1) == 0) {
        m >>= 1;
        ++e;
    }
}

// ref: pytorchvideo ConstantClipsPerVideoSampler.__call__ (commit 28fe037), ImageBind get_clip_timepoints
// and the slice waveform[:, int(start * rate) : int(end * rate)] in load_and_transform_audio_data.
std::vector<ibl_audio_clip> ibl_audio_clips(int64_t n_samples, int sample_rate, double clip_duration, int clips) {
    if (sample_rate <= 0) ibl_throw("ERR_INVALID_ARG", "audio sample rate must be positive, got %d", sample_rate);
    if (!(clip_duration > 0.0) || !std::isfinite(clip_duration)) ibl_throw("ERR_INVALID_ARG", "audio clip duration must be positive, got %g", clip_duration);
    if (clips < 1 || clips > 4096) ibl_throw("ERR_INVALID_ARG", "audio clips per input must be 1 to 4096, got %d", clips);
    if (n_samples < 0) ibl_throw("ERR_INVALID_ARG", "negative audio length");

    // Python: duration = n / rate (a float); float - Fraction(clip) is a float subtraction;
    // Fraction(max(that, 0)) is exact; step = that / max(clips - 1, 1) stays exact.
    const double duration = (double) n_samples / (double) sample_rate;
    const double max_start = duration - clip_duration;
    uint64_t sm, cm;
    int se, ce;
    exact_dyadic(max_start > 0.0 ? max_start : 0.0, sm, se);
    exact_dyadic(clip_duration, cm, ce);
    const uint32_t div = (uint32_t) std::max(clips - 1, 1);
    const int S = std::max({0, -se, -ce});  // common denominator 2^S

    std::vector<ibl_audio_clip> out(clips);
    for (int k = 0; k < clips; ++k) {
        // start * rate = k * sm * 2^se * rate / div
        big_uint a(sm);
        a.mul((uint32_t) k);
        a.shl(se + S);
        big_uint end = a;
        a.mul((uint32_t) sample_rate);
        a.div(div);
        a.shr(S);
        out[k].start = a.to_i64();
        // end * rate = (k * sm * 2^se + div * cm * 2^ce) * rate / div
        big_uint c(cm);
        c.mul(div);
        c.shl(ce + S);
        end.add(c);
        end.mul((uint32_t) sample_rate);
        end.div(div);
        end.shr(S);
        out[k].end = end.to_i64();
    }
    return out;
}

// ============================================================================================
// Kaldi filterbank
// ============================================================================================

static double mel_scale(double f) { return 1127.0 * std::log(1.0 + f / 700.0); }

// ref: torchaudio.compliance.kaldi.get_mel_banks (vtln_warp 1): float32 tensors, so float32 here too.
static void fbank_init_mel(ibl_fbank & fb, int sample_rate, double low_freq) {
    const int n_bins = fb.n_fft / 2;
    const double nyquist = 0.5 * sample_rate, high_freq = nyquist;  // high_freq 0 means Nyquist
    const double bin_width = (double) sample_rate / fb.n_fft;
    const double mel_low = mel_scale(low_freq), mel_high = mel_scale(high_freq);
    const double delta = (mel_high - mel_low) / (fb.n_mels + 1);
    const float lo_f = (float) mel_low, delta_f = (float) delta;

    // mel of each FFT bin: float32 ops, with the log correctly rounded (closest to upstream's float32 log;
    // a 1-ulp change here moves filter weights by ~1e-5)
    std::vector<float> mel(n_bins);
    for (int k = 0; k < n_bins; ++k) {
        const float f = (float) k * (float) bin_width;
        mel[k] = 1127.0f * (float) std::log((double) (1.0f + f / 700.0f));
    }
    fb.mel.assign((size_t) fb.n_mels * n_bins, 0.0f);
    fb.mel_lo.assign(fb.n_mels, 0);
    fb.mel_hi.assign(fb.n_mels, 0);
    for (int b = 0; b < fb.n_mels; ++b) {
        const float left   = lo_f + (float) b * delta_f;
        const float centre = lo_f + ((float) b + 1.0f) * delta_f;
        const float right  = lo_f + ((float) b + 2.0f) * delta_f;
        int lo = n_bins, hi = 0;
        for (int k = 0; k < n_bins; ++k) {
            const float up   = (mel[k] - left) / (centre - left);
            const float down = (right - mel[k]) / (right - centre);
            const float v = std::max(0.0f, std::min(up, down));
            fb.mel[(size_t) b * n_bins + k] = v;
            if (v > 0.0f) {
                lo = std::min(lo, k);
                hi = k + 1;
            }
        }
        fb.mel_lo[b] = std::min(lo, hi);
        fb.mel_hi[b] = hi;
    }
}

ibl_fbank ibl_fbank_init(int sample_rate, int n_mels, double frame_length_ms, double frame_shift_ms) {
    const double low_freq = 20.0;
    if (sample_rate <= 2 * low_freq || sample_rate > IBL_AUDIO_MAX_RATE) {
        ibl_throw("ERR_INVALID_ARG", "audio sample rate %d Hz out of range (above %g Hz, at most %d)", sample_rate, 2 * low_freq, IBL_AUDIO_MAX_RATE);
    }
    if (n_mels <= 3 || n_mels > 4096) ibl_throw("ERR_INVALID_ARG", "audio mel bins must be 4 to 4096, got %d", n_mels);
    // ref: torchaudio kaldi _get_waveform_and_window_properties: int(rate * ms * 0.001), next power of two.
    const double len = (double) sample_rate * frame_length_ms * 0.001, shift = (double) sample_rate * frame_shift_ms * 0.001;
    if (!(len >= 2.0 && len <= 1 << 20) || !(shift >= 1.0 && shift <= 1 << 20)) {
        ibl_throw("ERR_INVALID_ARG", "audio frame length %g ms / shift %g ms give %g / %g samples", frame_length_ms, frame_shift_ms, len, shift);
    }
    ibl_fbank fb;
    fb.frame_length = (int) len;
    fb.frame_shift  = (int) shift;
    fb.n_mels       = n_mels;
    fb.n_fft        = 1;
    while (fb.n_fft < fb.frame_length) fb.n_fft *= 2;

    // ref: torch.hann_window(periodic=False): arange * (2 pi / (N - 1)) -> cos -> * -0.5 + 0.5, float32.
    fb.window.resize(fb.frame_length);
    const float step = (float) (IBL_PI * 2.0 / (double) (fb.frame_length - 1));
    for (int i = 0; i < fb.frame_length; ++i) fb.window[i] = std::cos((float) i * step) * -0.5f + 0.5f;

    fbank_init_mel(fb, sample_rate, low_freq);

    const int n = fb.n_fft;
    int log2n = 0;
    while ((1 << log2n) < n) ++log2n;
    fb.bitrev.resize(n);
    for (int i = 0; i < n; ++i) {
        int r = 0;
        for (int b = 0; b < log2n; ++b) r |= ((i >> b) & 1) << (log2n - 1 - b);
        fb.bitrev[i] = r;
    }
    fb.cos_tab.resize(n / 2);
    fb.sin_tab.resize(n / 2);
    for (int k = 0; k < n / 2; ++k) {
        fb.cos_tab[k] = std::cos(2.0 * IBL_PI * k / n);
        fb.sin_tab[k] = -std::sin(2.0 * IBL_PI * k / n);
    }
    return fb;
}

int64_t ibl_fbank_frames(const ibl_fbank & fb, int64_t n) {
    return n < fb.frame_length ? 0 : 1 + (n - fb.frame_length) / fb.frame_shift;
}

// In-place radix-2 forward DFT (e^{-2 pi i k n / N}) in double precision.
static void fft(const ibl_fbank & fb, double * re, double * im) {
    const int n = fb.n_fft;
    for (int i = 0; i < n; ++i) {
        const int r = fb.bitrev[i];
        if (r > i) {
            std::swap(re[i], re[r]);
            std::swap(im[i], im[r]);
        }
    }
    for (int len = 2; len <= n; len *= 2) {
        const int half = len / 2, stride = n / len;
        for (int s = 0; s < n; s += len) {
            for (int k = 0; k < half; ++k) {
                const double wr = fb.cos_tab[k * stride], wi = fb.sin_tab[k * stride];
                double & ar = re[s + k], & ai = im[s + k];
                double & br = re[s + k + half], & bi = im[s + k + half];
                const double tr = br * wr - bi * wi, ti = br * wi + bi * wr;
                br = ar - tr;
                bi = ai - ti;
                ar += tr;
                ai += ti;
            }
        }
    }
}

// ref: torchaudio.compliance.kaldi.fbank / _get_window with ImageBind's arguments (dither 0,
// remove_dc_offset, preemphasis 0.97, window "hanning", use_energy False, use_power, use_log_fbank).
std::vector<float> ibl_fbank_compute(const ibl_fbank & fb, const float * x, int64_t n) {
    const int64_t frames = ibl_fbank_frames(fb, n);
    if (frames == 0) {
        ibl_throw("ERR_AUDIO_TOO_SHORT", "audio clip of %lld samples is shorter than one filterbank window (%d samples)",
                  (long long) n, fb.frame_length);
    }
    const int L = fb.frame_length, N = fb.n_fft, n_bins = N / 2;
    const double preemph = (double) 0.97f;  // the Python float is applied to a float32 tensor
    std::vector<double> frame(L), re(N), im(N), power(n_bins);
    std::vector<float> out((size_t) frames * fb.n_mels);
    for (int64_t f = 0; f < frames; ++f) {
        const float * src = x + f * fb.frame_shift;
        double mean = 0.0;
        for (int i = 0; i < L; ++i) mean += src[i];
        mean /= L;
        for (int i = 0; i < L; ++i) frame[i] = (double) src[i] - mean;
        // pre-emphasis: x[i] - 0.97 x[i - 1], the first sample uses itself (replicate padding)
        for (int i = L - 1; i >= 0; --i) {
            const double prev = frame[i > 0 ? i - 1 : 0];
            re[i] = (frame[i] - preemph * prev) * fb.window[i];
        }
        std::fill(re.begin() + L, re.end(), 0.0);
        std::fill(im.begin(), im.end(), 0.0);
        fft(fb, re.data(), im.data());
        for (int k = 0; k < n_bins; ++k) power[k] = re[k] * re[k] + im[k] * im[k];  // Nyquist bin unused
        float * row = out.data() + f * fb.n_mels;
        for (int m = 0; m < fb.n_mels; ++m) {
            const float * w = fb.mel.data() + (size_t) m * n_bins;
            double e = 0.0;
            for (int k = fb.mel_lo[m]; k < fb.mel_hi[m]; ++k) e += power[k] * w[k];
            row[m] = (float) std::log((double) std::max((float) e, FLT_EPSILON));
        }
    }
    return out;
}

// ref: ImageBind data.waveform2melspec after the fbank: transpose, zero-pad or cut to target_length.
std::vector<float> ibl_audio_melspec(const ibl_fbank & fb, const float * x, int64_t n, int target_length) {
    const std::vector<float> fbank = ibl_fbank_compute(fb, x, n);  // (frames, n_mels)
    const int64_t frames = (int64_t) fbank.size() / fb.n_mels;
    const int64_t keep = std::min<int64_t>(frames, target_length);
    std::vector<float> out((size_t) fb.n_mels * target_length, 0.0f);  // (n_mels, target_length)
    for (int m = 0; m < fb.n_mels; ++m) {
        for (int64_t t = 0; t < keep; ++t) out[(size_t) m * target_length + t] = fbank[(size_t) t * fb.n_mels + m];
    }
    return out;
}

// ============================================================================================
// Pipeline
// ============================================================================================

std::unique_ptr<ibl_audio_ctx> ibl_audio_ctx_init(const ibl_audio_params & p) {
    if (p.target_length < 1 || p.target_length > 1 << 20) ibl_throw("ERR_INVALID_ARG", "audio target length must be 1 to %d, got %d", 1 << 20, p.target_length);
    if (!(p.std != 0.0f) || !std::isfinite(p.std) || !std::isfinite(p.mean)) ibl_throw("ERR_INVALID_ARG", "audio mean/std must be finite with std != 0");
    ibl_audio_clips(0, p.sample_rate, p.clip_duration, p.clips);  // validates the clip parameters
    auto ctx = std::make_unique<ibl_audio_ctx>();
    ctx->params = p;
    ctx->fbank  = ibl_fbank_init(p.sample_rate, p.num_mel_bins, p.frame_length_ms, p.frame_shift_ms);
    return ctx;
}

std::shared_ptr<const ibl_resampler> ibl_audio_ctx_resampler(ibl_audio_ctx & ctx, int orig_rate) {
    const std::pair<int, int> key(orig_rate, ctx.params.sample_rate);
    {
        std::lock_guard<std::mutex> lock(ctx.mutex);
        auto it = ctx.resamplers.find(key);
        if (it != ctx.resamplers.end()) return it->second;
    }
    auto r = std::make_shared<const ibl_resampler>(ibl_resampler_init(orig_rate, ctx.params.sample_rate));
    std::lock_guard<std::mutex> lock(ctx.mutex);
    if (ctx.resamplers.size() >= 16) ctx.resamplers.clear();  // a handful of input rates in practice
    return ctx.resamplers.emplace(key, r).first->second;
}

static void check_channels(const std::vector<std::vector<float>> & channels, int sample_rate) {
    if (channels.empty()) ibl_throw("ERR_INVALID_ARG", "audio has no channels");
    if (sample_rate < IBL_AUDIO_MIN_RATE || sample_rate > IBL_AUDIO_MAX_RATE) {
        ibl_throw("ERR_AUDIO_UNSUPPORTED", "unsupported audio sample rate %d Hz (expected %d to %d)", sample_rate, IBL_AUDIO_MIN_RATE, IBL_AUDIO_MAX_RATE);
    }
    const size_t n = channels[0].size();
    // Resampling keeps the whole waveform in memory: bound its duration (before any work).
    if ((double) n / sample_rate > IBL_AUDIO_MAX_SECONDS) {
        ibl_throw("ERR_AUDIO_TOO_LONG", "audio of %.0f s is longer than the %d s this reads (trim it)", (double) n / sample_rate, IBL_AUDIO_MAX_SECONDS);
    }
    for (size_t c = 0; c < channels.size(); ++c) {
        if (channels[c].size() != n) {
            ibl_throw("ERR_INVALID_ARG", "audio channel %zu has %zu samples, channel 0 has %zu", c, channels[c].size(), n);
        }
        for (size_t i = 0; i < n; ++i) {
            if (!std::isfinite(channels[c][i])) ibl_throw("ERR_AUDIO_INVALID", "audio sample %zu of channel %zu is not finite", i, c);
            // Float samples are [-1, 1]; far beyond that the filterbank's power overflows float32.
            if (std::fabs(channels[c][i]) > 1e15f) ibl_throw("ERR_AUDIO_INVALID", "audio sample %zu of channel %zu (%g) is out of range", i, c, channels[c][i]);
        }
    }
    if (n == 0) ibl_throw("ERR_AUDIO_EMPTY", "audio has no samples");
}

// ref: ImageBind waveform2melspec `waveform -= waveform.mean()` on the clip's slice view: float32 mean over
// all channels, subtracted in the shared buffer, so later overlapping clips see it.
static void subtract_clip_mean(std::vector<std::vector<float>> & wav, int64_t s, int64_t e) {
    double sum = 0.0;
    for (const auto & ch : wav) {
        for (int64_t i = s; i < e; ++i) sum += ch[i];
    }
    const float mean = (float) (sum / ((double) wav.size() * (double) (e - s)));
    for (auto & ch : wav) {
        for (int64_t i = s; i < e; ++i) ch[i] -= mean;
    }
}

std::vector<float> ibl_audio_preprocess(ibl_audio_ctx & ctx, const std::vector<std::vector<float>> & channels, int sample_rate,
                                        ibl_audio_trace * trace) {
    const ibl_audio_params & p = ctx.params;
    check_channels(channels, sample_rate);

    // ref: load_and_transform_audio_data: resample only when the rate differs.
    std::vector<std::vector<float>> wav;
    if (sample_rate != p.sample_rate) {
        const auto r = ibl_audio_ctx_resampler(ctx, sample_rate);
        for (const auto & ch : channels) wav.push_back(ibl_resample(*r, ch.data(), (int64_t) ch.size()));
    } else {
        wav = channels;
    }
    const int64_t n = (int64_t) wav[0].size();

    const std::vector<ibl_audio_clip> clips = ibl_audio_clips(n, p.sample_rate, p.clip_duration, p.clips);
    const size_t per_clip = (size_t) p.num_mel_bins * p.target_length;
    std::vector<float> out(clips.size() * per_clip);  // (clips, 1, num_mel_bins, target_length)
    if (trace) {
        trace->clips = clips;
        trace->fbank_inputs.clear();
        trace->fbank.clear();
    }
    for (size_t k = 0; k < clips.size(); ++k) {
        const int64_t s = std::min(clips[k].start, n), e = std::min(clips[k].end, n);  // Python slice clamping
        if (e - s < ctx.fbank.frame_length) {
            ibl_throw("ERR_AUDIO_TOO_SHORT", "audio clip %zu has %lld samples at %d Hz, fewer than one %d-sample filterbank window",
                      k, (long long) std::max<int64_t>(e - s, 0), p.sample_rate, ctx.fbank.frame_length);
        }
        subtract_clip_mean(wav, s, e);
        // channel 0 only, not a downmix (kaldi.fbank's channel=-1 selects channel 0)
        const std::vector<float> spec = ibl_audio_melspec(ctx.fbank, wav[0].data() + s, e - s, p.target_length);
        if (trace) {
            trace->fbank_inputs.emplace_back(wav[0].begin() + s, wav[0].begin() + e);
            trace->fbank.insert(trace->fbank.end(), spec.begin(), spec.end());
        }
        // ref: torchvision Normalize(mean, std) on float32
        float * dst = out.data() + k * per_clip;
        for (size_t i = 0; i < per_clip; ++i) dst[i] = (spec[i] - p.mean) / p.std;
    }
    return out;
}

std::vector<float> ibl_audio_preprocess(const std::vector<std::vector<float>> & channels, int sample_rate, const ibl_audio_params & params) {
    auto ctx = ibl_audio_ctx_init(params);
    return ibl_audio_preprocess(*ctx, channels, sample_rate);
}
