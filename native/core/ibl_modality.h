// The seven ImageBind modalities. Every per-modality table lives here; the rest of the code looks
// modalities up instead of switching on them.
#pragma once

#include <string>

enum ibl_modality {
    IBL_MOD_VISION = 0,
    IBL_MOD_TEXT,
    IBL_MOD_AUDIO,
    IBL_MOD_DEPTH,
    IBL_MOD_THERMAL,
    IBL_MOD_IMU,
    IBL_MOD_POINT,
    IBL_MOD_COUNT,
};

// How a modality turns its input into tokens (which graph stem it uses).
enum ibl_stem_kind {
    IBL_STEM_PATCH,   // conv with kernel over an image/spectrogram/clip → im2col patches × matrix (+ LN)
    IBL_STEM_TOKENS,  // token ids → embedding lookup (text)
    IBL_STEM_WINDOWS, // fixed windows of a 1-D signal → linear (+ LN) (IMU)
    IBL_STEM_POINTS,  // grouped point neighbourhoods → mini-PointNet (Point-Bind)
};

struct ibl_modality_info {
    ibl_modality  id;
    const char *  name;    // "vision", "text", ... (GGUF key part, API name)
    const char *  prefix;  // tensor-name prefix (ibl_keys.h)
    const char *  ckpt;    // upstream state-dict name (modality_trunks.<ckpt>...)
    ibl_stem_kind stem;
};

const ibl_modality_info & ibl_modality_get(ibl_modality m);
// Returns IBL_MOD_COUNT when unknown.
ibl_modality ibl_modality_from_name(const std::string & name);
