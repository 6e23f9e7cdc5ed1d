// Audio preprocessing for the ImageBind audio encoder: WAV decoding, torchaudio's default resampler,
// ImageBind's clip sampling and the Kaldi log-mel filterbank.
//
// Mirrors the upstream Python pipeline number for number (fixtures README 4.3):
//   torchaudio.load -> torchaudio.functional.resample (sinc, Hann window) -> 3 clips of 2 s
//   (pytorchvideo ConstantClipsPerVideoSampler, exact rationals) -> per clip, in order: subtract the clip
//   mean in place in the shared buffer -> torchaudio.compliance.kaldi.fbank on channel 0 ->
//   (mel, frames) zero-padded / cut to target_length -> (x - mean) / std
// ref: ImageBind data.load_and_transform_audio_data / waveform2melspec
// All sizes and constants are parameters (ibl_audio_params): they come from the GGUF, not from this file.
//
// Error codes (ibl_error::code); messages name the source where there is one:
//   ERR_AUDIO_DECODE       not a WAV file, malformed or truncated header
//   ERR_AUDIO_UNSUPPORTED  a WAV encoding we do not read (A-law, ADPCM, big-endian RIFX, RF64, ...),
//                          or a sample rate outside [IBL_AUDIO_MIN_RATE, IBL_AUDIO_MAX_RATE]
//   ERR_AUDIO_EMPTY        no samples
//   ERR_AUDIO_TOO_SHORT    a clip shorter than one filterbank window (25 ms)
//   ERR_AUDIO_INVALID      NaN / Inf samples
//   ERR_INVALID_ARG        bad parameters or mismatched channel lengths
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

constexpr int IBL_AUDIO_MAX_RATE = 1000000;  // Hz; bounds the polyphase table (<= ~50 MB for any rate pair)
// Below this an upsampling to 16 kHz multiplies the samples (a 1 Hz WAV would become 16000× longer).
constexpr int IBL_AUDIO_MIN_RATE = 1000;
// Longest waveform read (the whole of it is resampled in memory): 30 minutes (ts/media.ts: the same).
constexpr int IBL_AUDIO_MAX_SECONDS = 1800;

// Decoded audio like torchaudio.load(normalize=True): float32 per channel, PCM scaled to [-1, 1).
struct ibl_wave {
    int                             sample_rate = 0;
    std::vector<std::vector<float>> channels;  // [channel][sample], all the same length

    int64_t n_samples() const { return channels.empty() ? 0 : (int64_t) channels[0].size(); }
};

// ---- WAV (RIFF/WAVE, little endian) ----
// PCM 8 (unsigned) / 16 / 24 / 32-bit, IEEE float 32 / 64-bit, WAVE_FORMAT_EXTENSIBLE, any channel count.
// Scaling as torchaudio: u8 (v - 128) / 128, s16 v / 2^15, s24 v / 2^23, s32 v / 2^31, floats as stored.
// A data chunk longer than the file (streamed or cut-off writes) is read up to the last whole frame.
// `what` names the source in error messages (a path or "<buffer>").
ibl_wave ibl_wav_parse(const uint8_t * bytes, size_t size, const std::string & what);
ibl_wave ibl_wav_load(const std::string & path);

// ---- resampler: torchaudio.functional.resample defaults (sinc_interp_hann, width 6, rolloff 0.99) ----
// One polyphase table per (orig, new) pair, built once. Row j (output phase) keeps only the taps whose
// clamped time |t| < 6: the taps at the clamp weigh ~1e-22 upstream and are skipped.
struct ibl_resampler {
    int64_t orig  = 0;  // input rate / gcd
    int64_t next  = 0;  // output rate / gcd
    int64_t width = 0;  // zero padding on the left, in input samples
    std::vector<int64_t> first;  // [next] input offset of row j's first tap, relative to q * orig
    std::vector<int64_t> start;  // [next + 1] row j's taps are taps[start[j] .. start[j + 1])
    std::vector<float>   taps;   // float32 kernel values, as upstream computes them
};
ibl_resampler      ibl_resampler_init(int orig_rate, int new_rate);
int64_t            ibl_resampled_length(const ibl_resampler & r, int64_t n);  // ceil(next * n / orig)
std::vector<float> ibl_resample(const ibl_resampler & r, const float * x, int64_t n);

// ---- clip boundaries: pytorchvideo ConstantClipsPerVideoSampler with exact rationals ----
// Sample range [start, end) of each clip: int(k * step * rate) and int((k * step + clip_duration) * rate),
// step = Fraction(max(n / rate - clip_duration, 0)) / max(clips - 1, 1). `end` may pass n_samples
// (the slice is then shorter, as in Python).
struct ibl_audio_clip {
    int64_t start = 0, end = 0;
};
std::vector<ibl_audio_clip> ibl_audio_clips(int64_t n_samples, int sample_rate, double clip_duration, int clips);

// ---- Kaldi filterbank: torchaudio.compliance.kaldi.fbank as ImageBind calls it ----
// snip_edges, DC removal, pre-emphasis 0.97, symmetric Hann window, FFT size the next power of two,
// power spectrum, triangular mel filters 20 Hz .. Nyquist on 1127 ln(1 + f / 700), log(max(e, FLT_EPSILON)).
struct ibl_fbank {
    int frame_length = 0;  // samples per window (400 at 16 kHz)
    int frame_shift  = 0;  // samples between windows (160)
    int n_fft        = 0;  // padded window (512)
    int n_mels       = 0;
    std::vector<float>  window;               // [frame_length] torch.hann_window(periodic=False), float32
    std::vector<float>  mel;                  // [n_mels, n_fft / 2] filter weights, float32 (Nyquist bin unused)
    std::vector<int>    mel_lo, mel_hi;       // [n_mels] non-zero column range of each filter
    std::vector<int>    bitrev;               // [n_fft]
    std::vector<double> cos_tab, sin_tab;     // [n_fft / 2] FFT twiddles
};
ibl_fbank ibl_fbank_init(int sample_rate, int n_mels, double frame_length_ms = 25.0, double frame_shift_ms = 10.0);
int64_t   ibl_fbank_frames(const ibl_fbank & fb, int64_t n);  // 1 + (n - frame_length) / frame_shift, or 0
// Log-mel energies (frames, n_mels) of n samples; throws ERR_AUDIO_TOO_SHORT below one window.
std::vector<float> ibl_fbank_compute(const ibl_fbank & fb, const float * x, int64_t n);
// waveform2melspec before normalisation: fbank transposed to (n_mels, target_length), zero-padded or cut.
std::vector<float> ibl_audio_melspec(const ibl_fbank & fb, const float * x, int64_t n, int target_length);

// ---- whole pipeline ----
struct ibl_audio_params {
    int    sample_rate    = 16000;  // rate the encoder expects
    int    num_mel_bins   = 128;
    int    target_length  = 204;    // spectrogram frames per clip after padding / cutting
    double clip_duration  = 2.0;    // seconds
    int    clips          = 3;      // clips per input
    float  mean           = -4.268f;
    float  std            = 9.138f;
    double frame_length_ms = 25.0;
    double frame_shift_ms  = 10.0;
};

// Tables built once per parameter set; resampler tables are built on first use per input rate and
// shared. Safe to use from several threads at once.
struct ibl_audio_ctx {
    ibl_audio_params params;
    ibl_fbank        fbank;
    std::mutex       mutex;  // guards resamplers
    std::map<std::pair<int, int>, std::shared_ptr<const ibl_resampler>> resamplers;
};
std::unique_ptr<ibl_audio_ctx>       ibl_audio_ctx_init(const ibl_audio_params & params);
std::shared_ptr<const ibl_resampler> ibl_audio_ctx_resampler(ibl_audio_ctx & ctx, int orig_rate);

// Intermediates of one call, for tests and dumps (compare with the fixtures' fbank_input / fbank files).
struct ibl_audio_trace {
    std::vector<ibl_audio_clip>     clips;         // sample ranges in the 16 kHz waveform
    std::vector<std::vector<float>> fbank_inputs;  // [clip] channel 0 of the clip after the mean subtraction
    std::vector<float>              fbank;         // (clips, 1, num_mel_bins, target_length) before normalisation
};

// channels: [channel][sample] at sample_rate. Returns float (clips, 1, num_mel_bins, target_length):
// one item of the encoder's (B, clips, 1, num_mel_bins, target_length) input.
std::vector<float> ibl_audio_preprocess(ibl_audio_ctx & ctx, const std::vector<std::vector<float>> & channels,
                                        int sample_rate, ibl_audio_trace * trace = nullptr);
// Same, building the tables for this call only.
std::vector<float> ibl_audio_preprocess(const std::vector<std::vector<float>> & channels, int sample_rate,
                                        const ibl_audio_params & params = ibl_audio_params());
