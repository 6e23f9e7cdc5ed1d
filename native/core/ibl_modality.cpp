#include "ibl_modality.h"
#include "ibl_keys.h"

static const ibl_modality_info MODALITIES[IBL_MOD_COUNT] = {
    {IBL_MOD_VISION,  "vision",  IBL_PREFIX_VISION,  "vision",  IBL_STEM_PATCH},
    {IBL_MOD_TEXT,    "text",    IBL_PREFIX_TEXT,    "text",    IBL_STEM_TOKENS},
    {IBL_MOD_AUDIO,   "audio",   IBL_PREFIX_AUDIO,   "audio",   IBL_STEM_PATCH},
    {IBL_MOD_DEPTH,   "depth",   IBL_PREFIX_DEPTH,   "depth",   IBL_STEM_PATCH},
    {IBL_MOD_THERMAL, "thermal", IBL_PREFIX_THERMAL, "thermal", IBL_STEM_PATCH},
    {IBL_MOD_IMU,     "imu",     IBL_PREFIX_IMU,     "imu",     IBL_STEM_WINDOWS},
    {IBL_MOD_POINT,   "point",   IBL_PREFIX_POINT,   "point",   IBL_STEM_POINTS},
};

const ibl_modality_info & ibl_modality_get(ibl_modality m) { return MODALITIES[m]; }

ibl_modality ibl_modality_from_name(const std::string & name) {
    for (const auto & m : MODALITIES) if (name == m.name) return m.id;
    return IBL_MOD_COUNT;
}
