#include "ibl_text_stream.h"

#include <algorithm>

static const char * const REPLACEMENT = "\xEF\xBF\xBD";  // U+FFFD

// Length of the UTF-8 sequence starting at s[0], 0 when s[0] cannot start one. `lo`/`hi` bound the
// second byte (the first continuation byte decides overlongs, surrogates and the U+10FFFF limit).
static int utf8_lead(unsigned char c, unsigned char & lo, unsigned char & hi) {
    lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c == 0xE0) { lo = 0xA0; return 3; }
    if (c == 0xED) { hi = 0x9F; return 3; }
    if (c >= 0xE1 && c <= 0xEF) return 3;
    if (c == 0xF0) { lo = 0x90; return 4; }
    if (c == 0xF4) { hi = 0x8F; return 4; }
    if (c >= 0xF1 && c <= 0xF3) return 4;
    return 0;
}

ibl_text_stream::ibl_text_stream(std::vector<std::string> stops) {
    for (auto & s : stops) if (!s.empty()) stops_.push_back(std::move(s));
}

// Moves every byte whose fate is known from bytes_ to text_; at_end decides incomplete sequences too.
std::string ibl_text_stream::decode(bool at_end) {
    std::string out;
    size_t i = 0;
    while (i < bytes_.size()) {
        unsigned char lo, hi;
        const int len = utf8_lead((unsigned char) bytes_[i], lo, hi);
        if (len == 0) { out += REPLACEMENT; ++i; continue; }
        // Check the continuation bytes present; stop at the first that is wrong.
        int k = 1;
        for (; k < len && i + k < bytes_.size(); ++k) {
            const unsigned char c = (unsigned char) bytes_[i + k];
            if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) break;
        }
        if (k == len) { out.append(bytes_, i, len); i += len; continue; }
        if (i + k == bytes_.size() && !at_end) break;  // incomplete so far: wait for more bytes
        out += REPLACEMENT;                             // invalid: replace the lead byte only
        ++i;
    }
    bytes_.erase(0, i);
    return out;
}

// Appends newly decoded text, applies the stop strings and returns what is now final.
std::string ibl_text_stream::release(bool at_end) {
    if (stopped_) return "";
    text_ += decode(at_end);
    // A stop string can only start at or after emitted_: any earlier start would have been held back.
    size_t cut = std::string::npos;
    for (const auto & s : stops_) {
        const size_t at = text_.find(s, emitted_);
        if (at != std::string::npos) cut = std::min(cut, at);
    }
    size_t ready = text_.size();
    if (cut != std::string::npos) {
        text_.resize(cut);
        ready = cut;
        stopped_ = true;
    } else if (!at_end) {
        // Hold back the longest tail that is a proper prefix of a stop string.
        size_t hold = 0;
        for (const auto & s : stops_) {
            for (size_t k = std::min(s.size() - 1, text_.size() - emitted_); k > hold; --k) {
                if (text_.compare(text_.size() - k, k, s, 0, k) == 0) { hold = k; break; }
            }
        }
        ready = text_.size() - hold;
    }
    std::string piece = text_.substr(emitted_, ready - emitted_);
    emitted_ = ready;
    return piece;
}

std::string ibl_text_stream::push(const std::string & bytes) {
    if (stopped_) return "";
    bytes_ += bytes;
    return release(false);
}

std::string ibl_text_stream::finish() {
    return release(true);
}

std::string ibl_utf8_sanitize(const std::string & bytes) {
    ibl_text_stream s;
    s.push(bytes);
    s.finish();
    return s.text();
}
