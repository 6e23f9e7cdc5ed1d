// CLIP byte-level BPE tokenizer (see ibl_bpe.h).
//
// Where this differs from upstream (ImageBind's SimpleTokenizer under CPython with ftfy and regex),
// always for unusual text only:
//  * ftfy.fix_text (a Python library; ftfy 6 behaviour assumed) is not available in C++. We do its
//    cheap, deterministic fixes in its order (HTML references on lines without '<', C1 controls read
//    as Windows-1252, Latin ligatures, full- and half-width forms, curly quotes, terminal escapes,
//    control characters), but neither its mojibake repair (fix_encoding) nor its NFC normalisation
//    (llama.cpp ships no composition tables), and we stop its repeat-until-unchanged loop after
//    FTFY_MAX_ROUNDS. So mojibake ("cafÃ©") and decomposed accents ("e" + U+0301) tokenize
//    differently than upstream; for ordinary text ftfy is a no-op and so is this.
//  * Named HTML references: the HTML 4 set, &apos; and every name Python accepts without ';' are
//    known; the other ~2,000 HTML5 names stay literal (upstream decodes them).
//  * Lower-casing is Python's str.lower(): llama.cpp's simple UnicodeData mapping plus the two
//    unconditional special cases (U+0130 -> "i" U+0307, final sigma). Final sigma needs Unicode's
//    Cased / Case_Ignorable properties, which llama.cpp lacks; ours are exact for Latin, Greek and
//    Cyrillic, approximate elsewhere.
//  * Letter / number / space classes are llama.cpp's tables (its Unicode version, which may differ
//    from the regex module's for characters added recently).
#include "ibl_bpe.h"

#include "ibl_error.h"
#include "unicode-data.h"
#include "unicode.h"

#include <algorithm>
#include <cstring>
#include <queue>
#include <utility>

using ibl_cpts = std::vector<uint32_t>;

static constexpr int    FTFY_MAX_ROUNDS    = 16;         // ftfy repeats its fixes until nothing changes
static constexpr size_t CACHE_MAX_PIECE    = 64;         // bytes; longer pieces are rare and not cached
static constexpr size_t CACHE_MAX_ENTRIES  = 65536;
static constexpr int    MAX_CONTEXT_LENGTH = 1 << 20;    // a sanity bound; the model uses 77

// ---------------------------------------------------------------------------------------------
// UTF-8. llama.cpp's unicode_cpts_from_utf8 replaces bad bytes silently and accepts overlong
// forms and surrogates, so we decode ourselves: strictly for input, leniently for decode().

// Length (> 0) of the well-formed sequence at s, setting cp; or minus the length of its maximal
// ill-formed subpart (Unicode table 3-7; what Python's errors="replace" turns into one U+FFFD).
static int utf8_decode_one(const uint8_t * s, size_t n, uint32_t & cp) {
    const uint32_t c = s[0];
    if (c < 0x80) {
        cp = c;
        return 1;
    }
    int len;
    uint32_t v;
    uint8_t lo = 0x80, hi = 0xBF;  // range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;  // overlong
        if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07;
        if (c == 0xF0) lo = 0x90;  // overlong
        if (c == 0xF4) hi = 0x8F;  // > U+10FFFF
    } else {
        return -1;
    }
    for (int k = 1; k < len; ++k) {
        if ((size_t) k >= n || s[k] < lo || s[k] > hi) return -k;
        v = (v << 6) | (s[k] & 0x3F);
        lo = 0x80, hi = 0xBF;
    }
    cp = v;
    return len;
}

static void utf8_append(std::string & out, uint32_t cp) {
    if (cp < 0x80) {
        out += (char) cp;
    } else if (cp < 0x800) {
        out += (char) (0xC0 | (cp >> 6));
        out += (char) (0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += (char) (0xE0 | (cp >> 12));
        out += (char) (0x80 | ((cp >> 6) & 0x3F));
        out += (char) (0x80 | (cp & 0x3F));
    } else {
        out += (char) (0xF0 | (cp >> 18));
        out += (char) (0x80 | ((cp >> 12) & 0x3F));
        out += (char) (0x80 | ((cp >> 6) & 0x3F));
        out += (char) (0x80 | (cp & 0x3F));
    }
}

static std::string cpts_to_utf8(const uint32_t * p, size_t n) {
    std::string out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) utf8_append(out, p[i]);
    return out;
}

// Text as given by the caller: bounded and valid, or a clear error (never a silent U+FFFD).
static ibl_cpts text_to_cpts(const std::string & text) {
    if (text.size() > IBL_BPE_MAX_TEXT_BYTES) {
        ibl_throw("ERR_INVALID_ARG", "text is %zu bytes long; the tokenizer accepts at most %zu bytes",
                  text.size(), IBL_BPE_MAX_TEXT_BYTES);
    }
    ibl_cpts out;
    out.reserve(text.size());
    const uint8_t * s = (const uint8_t *) text.data();
    for (size_t i = 0; i < text.size();) {
        uint32_t cp = 0;
        const int len = utf8_decode_one(s + i, text.size() - i, cp);
        if (len < 0) ibl_throw("ERR_INVALID_ARG", "text is not valid UTF-8 (byte %zu: 0x%02X)", i, s[i]);
        out.push_back(cp);
        i += len;
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Tables

// Windows-1252 for 0x80-0x9F, the five bytes it leaves undefined standing for themselves. It is
// both ftfy's "sloppy-windows-1252" (fix_c1_controls) and Python html's _invalid_charrefs.
static const uint16_t CP1252_C1[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
    0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

struct ibl_html_entity {
    const char * name;    // without '&' and ';'
    uint32_t     cp;
    bool         legacy;  // also recognised without ';' (and as a prefix), per HTML5
};

// Python's html.entities.html5 restricted to the HTML 4 names (name2codepoint), &apos; and the
// 106 legacy names; sorted by strcmp for binary search.
static const ibl_html_entity HTML_ENTITIES[] = {
    {"AElig", 0x00C6, 1}, {"AMP", 0x0026, 1}, {"Aacute", 0x00C1, 1}, {"Acirc", 0x00C2, 1}, {"Agrave", 0x00C0, 1},
    {"Alpha", 0x0391, 0}, {"Aring", 0x00C5, 1}, {"Atilde", 0x00C3, 1}, {"Auml", 0x00C4, 1}, {"Beta", 0x0392, 0},
    {"COPY", 0x00A9, 1}, {"Ccedil", 0x00C7, 1}, {"Chi", 0x03A7, 0}, {"Dagger", 0x2021, 0}, {"Delta", 0x0394, 0},
    {"ETH", 0x00D0, 1}, {"Eacute", 0x00C9, 1}, {"Ecirc", 0x00CA, 1}, {"Egrave", 0x00C8, 1}, {"Epsilon", 0x0395, 0},
    {"Eta", 0x0397, 0}, {"Euml", 0x00CB, 1}, {"GT", 0x003E, 1}, {"Gamma", 0x0393, 0}, {"Iacute", 0x00CD, 1},
    {"Icirc", 0x00CE, 1}, {"Igrave", 0x00CC, 1}, {"Iota", 0x0399, 0}, {"Iuml", 0x00CF, 1}, {"Kappa", 0x039A, 0},
    {"LT", 0x003C, 1}, {"Lambda", 0x039B, 0}, {"Mu", 0x039C, 0}, {"Ntilde", 0x00D1, 1}, {"Nu", 0x039D, 0},
    {"OElig", 0x0152, 0}, {"Oacute", 0x00D3, 1}, {"Ocirc", 0x00D4, 1}, {"Ograve", 0x00D2, 1}, {"Omega", 0x03A9, 0},
    {"Omicron", 0x039F, 0}, {"Oslash", 0x00D8, 1}, {"Otilde", 0x00D5, 1}, {"Ouml", 0x00D6, 1}, {"Phi", 0x03A6, 0},
    {"Pi", 0x03A0, 0}, {"Prime", 0x2033, 0}, {"Psi", 0x03A8, 0}, {"QUOT", 0x0022, 1}, {"REG", 0x00AE, 1},
    {"Rho", 0x03A1, 0}, {"Scaron", 0x0160, 0}, {"Sigma", 0x03A3, 0}, {"THORN", 0x00DE, 1}, {"Tau", 0x03A4, 0},
    {"Theta", 0x0398, 0}, {"Uacute", 0x00DA, 1}, {"Ucirc", 0x00DB, 1}, {"Ugrave", 0x00D9, 1}, {"Upsilon", 0x03A5, 0},
    {"Uuml", 0x00DC, 1}, {"Xi", 0x039E, 0}, {"Yacute", 0x00DD, 1}, {"Yuml", 0x0178, 0}, {"Zeta", 0x0396, 0},
    {"aacute", 0x00E1, 1}, {"acirc", 0x00E2, 1}, {"acute", 0x00B4, 1}, {"aelig", 0x00E6, 1}, {"agrave", 0x00E0, 1},
    {"alefsym", 0x2135, 0}, {"alpha", 0x03B1, 0}, {"amp", 0x0026, 1}, {"and", 0x2227, 0}, {"ang", 0x2220, 0},
    {"apos", 0x0027, 0}, {"aring", 0x00E5, 1}, {"asymp", 0x2248, 0}, {"atilde", 0x00E3, 1}, {"auml", 0x00E4, 1},
    {"bdquo", 0x201E, 0}, {"beta", 0x03B2, 0}, {"brvbar", 0x00A6, 1}, {"bull", 0x2022, 0}, {"cap", 0x2229, 0},
    {"ccedil", 0x00E7, 1}, {"cedil", 0x00B8, 1}, {"cent", 0x00A2, 1}, {"chi", 0x03C7, 0}, {"circ", 0x02C6, 0},
    {"clubs", 0x2663, 0}, {"cong", 0x2245, 0}, {"copy", 0x00A9, 1}, {"crarr", 0x21B5, 0}, {"cup", 0x222A, 0},
    {"curren", 0x00A4, 1}, {"dArr", 0x21D3, 0}, {"dagger", 0x2020, 0}, {"darr", 0x2193, 0}, {"deg", 0x00B0, 1},
    {"delta", 0x03B4, 0}, {"diams", 0x2666, 0}, {"divide", 0x00F7, 1}, {"eacute", 0x00E9, 1}, {"ecirc", 0x00EA, 1},
    {"egrave", 0x00E8, 1}, {"empty", 0x2205, 0}, {"emsp", 0x2003, 0}, {"ensp", 0x2002, 0}, {"epsilon", 0x03B5, 0},
    {"equiv", 0x2261, 0}, {"eta", 0x03B7, 0}, {"eth", 0x00F0, 1}, {"euml", 0x00EB, 1}, {"euro", 0x20AC, 0},
    {"exist", 0x2203, 0}, {"fnof", 0x0192, 0}, {"forall", 0x2200, 0}, {"frac12", 0x00BD, 1}, {"frac14", 0x00BC, 1},
    {"frac34", 0x00BE, 1}, {"frasl", 0x2044, 0}, {"gamma", 0x03B3, 0}, {"ge", 0x2265, 0}, {"gt", 0x003E, 1},
    {"hArr", 0x21D4, 0}, {"harr", 0x2194, 0}, {"hearts", 0x2665, 0}, {"hellip", 0x2026, 0}, {"iacute", 0x00ED, 1},
    {"icirc", 0x00EE, 1}, {"iexcl", 0x00A1, 1}, {"igrave", 0x00EC, 1}, {"image", 0x2111, 0}, {"infin", 0x221E, 0},
    {"int", 0x222B, 0}, {"iota", 0x03B9, 0}, {"iquest", 0x00BF, 1}, {"isin", 0x2208, 0}, {"iuml", 0x00EF, 1},
    {"kappa", 0x03BA, 0}, {"lArr", 0x21D0, 0}, {"lambda", 0x03BB, 0}, {"lang", 0x27E8, 0}, {"laquo", 0x00AB, 1},
    {"larr", 0x2190, 0}, {"lceil", 0x2308, 0}, {"ldquo", 0x201C, 0}, {"le", 0x2264, 0}, {"lfloor", 0x230A, 0},
    {"lowast", 0x2217, 0}, {"loz", 0x25CA, 0}, {"lrm", 0x200E, 0}, {"lsaquo", 0x2039, 0}, {"lsquo", 0x2018, 0},
    {"lt", 0x003C, 1}, {"macr", 0x00AF, 1}, {"mdash", 0x2014, 0}, {"micro", 0x00B5, 1}, {"middot", 0x00B7, 1},
    {"minus", 0x2212, 0}, {"mu", 0x03BC, 0}, {"nabla", 0x2207, 0}, {"nbsp", 0x00A0, 1}, {"ndash", 0x2013, 0},
    {"ne", 0x2260, 0}, {"ni", 0x220B, 0}, {"not", 0x00AC, 1}, {"notin", 0x2209, 0}, {"nsub", 0x2284, 0},
    {"ntilde", 0x00F1, 1}, {"nu", 0x03BD, 0}, {"oacute", 0x00F3, 1}, {"ocirc", 0x00F4, 1}, {"oelig", 0x0153, 0},
    {"ograve", 0x00F2, 1}, {"oline", 0x203E, 0}, {"omega", 0x03C9, 0}, {"omicron", 0x03BF, 0}, {"oplus", 0x2295, 0},
    {"or", 0x2228, 0}, {"ordf", 0x00AA, 1}, {"ordm", 0x00BA, 1}, {"oslash", 0x00F8, 1}, {"otilde", 0x00F5, 1},
    {"otimes", 0x2297, 0}, {"ouml", 0x00F6, 1}, {"para", 0x00B6, 1}, {"part", 0x2202, 0}, {"permil", 0x2030, 0},
    {"perp", 0x22A5, 0}, {"phi", 0x03C6, 0}, {"pi", 0x03C0, 0}, {"piv", 0x03D6, 0}, {"plusmn", 0x00B1, 1},
    {"pound", 0x00A3, 1}, {"prime", 0x2032, 0}, {"prod", 0x220F, 0}, {"prop", 0x221D, 0}, {"psi", 0x03C8, 0},
    {"quot", 0x0022, 1}, {"rArr", 0x21D2, 0}, {"radic", 0x221A, 0}, {"rang", 0x27E9, 0}, {"raquo", 0x00BB, 1},
    {"rarr", 0x2192, 0}, {"rceil", 0x2309, 0}, {"rdquo", 0x201D, 0}, {"real", 0x211C, 0}, {"reg", 0x00AE, 1},
    {"rfloor", 0x230B, 0}, {"rho", 0x03C1, 0}, {"rlm", 0x200F, 0}, {"rsaquo", 0x203A, 0}, {"rsquo", 0x2019, 0},
    {"sbquo", 0x201A, 0}, {"scaron", 0x0161, 0}, {"sdot", 0x22C5, 0}, {"sect", 0x00A7, 1}, {"shy", 0x00AD, 1},
    {"sigma", 0x03C3, 0}, {"sigmaf", 0x03C2, 0}, {"sim", 0x223C, 0}, {"spades", 0x2660, 0}, {"sub", 0x2282, 0},
    {"sube", 0x2286, 0}, {"sum", 0x2211, 0}, {"sup", 0x2283, 0}, {"sup1", 0x00B9, 1}, {"sup2", 0x00B2, 1},
    {"sup3", 0x00B3, 1}, {"supe", 0x2287, 0}, {"szlig", 0x00DF, 1}, {"tau", 0x03C4, 0}, {"there4", 0x2234, 0},
    {"theta", 0x03B8, 0}, {"thetasym", 0x03D1, 0}, {"thinsp", 0x2009, 0}, {"thorn", 0x00FE, 1}, {"tilde", 0x02DC, 0},
    {"times", 0x00D7, 1}, {"trade", 0x2122, 0}, {"uArr", 0x21D1, 0}, {"uacute", 0x00FA, 1}, {"uarr", 0x2191, 0},
    {"ucirc", 0x00FB, 1}, {"ugrave", 0x00F9, 1}, {"uml", 0x00A8, 1}, {"upsih", 0x03D2, 0}, {"upsilon", 0x03C5, 0},
    {"uuml", 0x00FC, 1}, {"weierp", 0x2118, 0}, {"xi", 0x03BE, 0}, {"yacute", 0x00FD, 1}, {"yen", 0x00A5, 1},
    {"yuml", 0x00FF, 1}, {"zeta", 0x03B6, 0}, {"zwj", 0x200D, 0}, {"zwnj", 0x200C, 0},
};

// ref: ftfy chardata.WIDTH_MAP (NFKC of U+FF01-U+FFEF): U+FF5F-U+FFEE here (0 = unchanged,
// 0xFFFF = U+FFE3, which becomes " " U+0304); U+FF01-U+FF5E are ASCII shifted by 0xFEE0.
static const uint16_t WIDTH_MAP_FF5F[] = {
    0x2985, 0x2986, 0x3002, 0x300C, 0x300D, 0x3001, 0x30FB, 0x30F2, 0x30A1, 0x30A3, 0x30A5, 0x30A7,
    0x30A9, 0x30E3, 0x30E5, 0x30E7, 0x30C3, 0x30FC, 0x30A2, 0x30A4, 0x30A6, 0x30A8, 0x30AA, 0x30AB,
    0x30AD, 0x30AF, 0x30B1, 0x30B3, 0x30B5, 0x30B7, 0x30B9, 0x30BB, 0x30BD, 0x30BF, 0x30C1, 0x30C4,
    0x30C6, 0x30C8, 0x30CA, 0x30CB, 0x30CC, 0x30CD, 0x30CE, 0x30CF, 0x30D2, 0x30D5, 0x30D8, 0x30DB,
    0x30DE, 0x30DF, 0x30E0, 0x30E1, 0x30E2, 0x30E4, 0x30E6, 0x30E8, 0x30E9, 0x30EA, 0x30EB, 0x30EC,
    0x30ED, 0x30EF, 0x30F3, 0x3099, 0x309A, 0x1160, 0x1100, 0x1101, 0x11AA, 0x1102, 0x11AC, 0x11AD,
    0x1103, 0x1104, 0x1105, 0x11B0, 0x11B1, 0x11B2, 0x11B3, 0x11B4, 0x11B5, 0x111A, 0x1106, 0x1107,
    0x1108, 0x1121, 0x1109, 0x110A, 0x110B, 0x110C, 0x110D, 0x110E, 0x110F, 0x1110, 0x1111, 0x1112,
    0x0000, 0x0000, 0x0000, 0x1161, 0x1162, 0x1163, 0x1164, 0x1165, 0x1166, 0x0000, 0x0000, 0x1167,
    0x1168, 0x1169, 0x116A, 0x116B, 0x116C, 0x0000, 0x0000, 0x116D, 0x116E, 0x116F, 0x1170, 0x1171,
    0x1172, 0x0000, 0x0000, 0x1173, 0x1174, 0x1175, 0x0000, 0x0000, 0x0000, 0x00A2, 0x00A3, 0x00AC,
    0xFFFF, 0x00A6, 0x00A5, 0x20A9, 0x0000, 0x2502, 0x2190, 0x2191, 0x2192, 0x2193, 0x25A0, 0x25CB,
};

struct ibl_ligature {
    uint32_t cp;
    uint32_t to[3];  // 0-terminated
};

// ref: ftfy chardata.LIGATURES
static const ibl_ligature LIGATURES[] = {
    {0x0132, {'I', 'J'}},        {0x0133, {'i', 'j'}},        {0x0149, {0x02BC, 'n'}},     {0x01C4, {'D', 0x017D}},
    {0x01C5, {'D', 0x017E}},     {0x01C6, {'d', 0x017E}},     {0x01C7, {'L', 'J'}},        {0x01C8, {'L', 'j'}},
    {0x01C9, {'l', 'j'}},        {0x01CA, {'N', 'J'}},        {0x01CB, {'N', 'j'}},        {0x01CC, {'n', 'j'}},
    {0x01F1, {'D', 'Z'}},        {0x01F2, {'D', 'z'}},        {0x01F3, {'d', 'z'}},        {0xFB00, {'f', 'f'}},
    {0xFB01, {'f', 'i'}},        {0xFB02, {'f', 'l'}},        {0xFB03, {'f', 'f', 'i'}},   {0xFB04, {'f', 'f', 'l'}},
    {0xFB05, {0x017F, 't'}},     {0xFB06, {'s', 't'}},
};

// ---------------------------------------------------------------------------------------------
// HTML character references

static bool is_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static bool is_xdigit(uint32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static bool is_alnum(uint32_t c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static uint32_t xdigit_value(uint32_t c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

// The entity named by cps p[0..n), or null. Names are ASCII letters and digits only.
static const ibl_html_entity * html_entity_find(const uint32_t * p, size_t n) {
    char name[33];
    if (n == 0 || n >= sizeof(name)) return nullptr;
    for (size_t i = 0; i < n; ++i) {
        if (!is_alnum(p[i])) return nullptr;
        name[i] = (char) p[i];
    }
    name[n] = 0;
    const ibl_html_entity * end = HTML_ENTITIES + sizeof(HTML_ENTITIES) / sizeof(HTML_ENTITIES[0]);
    const ibl_html_entity * it = std::lower_bound(HTML_ENTITIES, end, name,
        [](const ibl_html_entity & e, const char * s) { return strcmp(e.name, s) < 0; });
    return it != end && strcmp(it->name, name) == 0 ? it : nullptr;
}

// The longest legacy name that is a prefix of p[0..n) of at least 2 characters; sets `len`.
static const ibl_html_entity * html_legacy_prefix(const uint32_t * p, size_t n, size_t & len) {
    for (len = n; len >= 2; --len) {
        const ibl_html_entity * e = html_entity_find(p, len);
        if (e && e->legacy) return e;
    }
    return nullptr;
}

// ref: Python html._replace_charref, numeric branch (HTML5's table for invalid references)
static void html_append_charref(uint32_t v, ibl_cpts & out) {
    if (v == 0) {
        out.push_back(0xFFFD);
    } else if (v == 0x0D) {
        out.push_back(0x0D);
    } else if (v >= 0x80 && v <= 0x9F) {
        out.push_back(CP1252_C1[v - 0x80]);
    } else if ((v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF) {
        out.push_back(0xFFFD);
    } else if ((v >= 0x01 && v <= 0x08) || v == 0x0B || (v >= 0x0E && v <= 0x1F) || v == 0x7F ||
               (v >= 0xFDD0 && v <= 0xFDEF) || (v & 0xFFFE) == 0xFFFE) {
        // dropped
    } else {
        out.push_back(v);
    }
}

// ref: Python html.unescape: references matched by
// &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?) and replaced left to right, once.
static void html_unescape_cpts(const ibl_cpts & in, ibl_cpts & out) {
    out.clear();
    out.reserve(in.size());
    const size_t n = in.size();
    size_t i = 0;
    while (i < n) {
        if (in[i] != '&') {
            out.push_back(in[i++]);
            continue;
        }
        const size_t j = i + 1;  // after '&'
        if (j < n && in[j] == '#') {
            size_t k = j + 1;
            bool hex = false;
            if (k + 1 < n && (in[k] == 'x' || in[k] == 'X') && is_xdigit(in[k + 1])) {
                hex = true;
                ++k;
            } else if (k >= n || !is_digit(in[k])) {
                out.push_back(in[i++]);  // "&#" without digits is no reference
                continue;
            }
            uint64_t v = 0;
            for (; k < n && (hex ? is_xdigit(in[k]) : is_digit(in[k])); ++k) {
                v = std::min<uint64_t>(v * (hex ? 16 : 10) + xdigit_value(in[k]), 0x110000);  // Python ints do not overflow
            }
            if (k < n && in[k] == ';') ++k;
            html_append_charref((uint32_t) v, out);
            i = k;
            continue;
        }
        size_t k = j;
        while (k < n && k - j < 32 && in[k] != '\t' && in[k] != '\n' && in[k] != '\f' && in[k] != ' ' &&
               in[k] != '<' && in[k] != '&' && in[k] != '#' && in[k] != ';') {
            ++k;
        }
        if (k == j) {
            out.push_back(in[i++]);
            continue;
        }
        const size_t name_len = k - j;
        const bool   semi     = k < n && in[k] == ';';
        const size_t end      = k + (semi ? 1 : 0);
        const ibl_html_entity * e = html_entity_find(&in[j], name_len);
        if (e && (semi || e->legacy)) {
            out.push_back(e->cp);
        } else {
            // the longest legacy name that starts it (shorter than the whole "name;" match)
            size_t len = 0;
            e = html_legacy_prefix(&in[j], semi ? name_len : name_len - 1, len);
            if (e) {
                out.push_back(e->cp);
                out.insert(out.end(), in.begin() + j + len, in.begin() + end);
            } else {
                out.insert(out.end(), in.begin() + i, in.begin() + end);
            }
        }
        i = end;
    }
}

std::string ibl_bpe_html_unescape(const std::string & text) {
    const ibl_cpts in = text_to_cpts(text);
    ibl_cpts out;
    html_unescape_cpts(in, out);
    return cpts_to_utf8(out.data(), out.size());
}

// ---------------------------------------------------------------------------------------------
// ftfy subset (see the top of this file)

static uint32_t simple_upper(uint32_t c) {
    const auto & m = unicode_map_uppercase;  // sorted by codepoint, as generated
    auto it = std::lower_bound(m.begin(), m.end(), c,
        [](const std::pair<uint32_t, uint32_t> & p, uint32_t v) { return p.first < v; });
    return it != m.end() && it->first == c ? it->second : c;
}

// ref: ftfy fixes._unescape_fixup / chardata.HTML_ENTITIES: "&name;" from the table, or an
// all-caps "&NAME;" for a lower-case name when Python would not read "&NAME;" otherwise.
static bool ftfy_named_entity(const uint32_t * p, size_t n, ibl_cpts & out) {
    if (const ibl_html_entity * e = html_entity_find(p, n)) {
        out.push_back(e->cp);
        return true;
    }
    uint32_t lower[32];
    bool has_upper = false;
    for (size_t i = 0; i < n; ++i) {
        if (p[i] >= 'a' && p[i] <= 'z') return false;
        has_upper |= p[i] >= 'A' && p[i] <= 'Z';
        lower[i] = (p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i];
    }
    size_t len = 0;
    const ibl_html_entity * e = has_upper ? html_entity_find(lower, n) : nullptr;
    if (!e || html_legacy_prefix(p, n, len)) return false;
    if (e->cp == 0xDF) {  // str.upper() of sharp s
        out.push_back('S');
        out.push_back('S');
    } else {
        out.push_back(simple_upper(e->cp));
    }
    return true;
}

// ref: ftfy fixes.unescape_html: only complete references &#?[0-9A-Za-z]{1,24}; are replaced;
// a numeric one only when Python's html.unescape consumes all of it.
static void ftfy_unescape(const ibl_cpts & in, ibl_cpts & out) {
    out.clear();
    out.reserve(in.size());
    const size_t n = in.size();
    size_t i = 0;
    while (i < n) {
        if (in[i] != '&') {
            out.push_back(in[i++]);
            continue;
        }
        const bool numeric = i + 1 < n && in[i + 1] == '#';
        const size_t s = i + 1 + (numeric ? 1 : 0);
        size_t k = s;
        while (k < n && k - s <= 24 && is_alnum(in[k])) ++k;
        if (k == s || k - s > 24 || k >= n || in[k] != ';') {
            out.push_back(in[i++]);
            continue;
        }
        const size_t end = k + 1;
        bool done = false;
        if (numeric) {
            const ibl_cpts ref(in.begin() + i, in.begin() + end);
            ibl_cpts dec;
            html_unescape_cpts(ref, dec);
            if (std::find(dec.begin(), dec.end(), (uint32_t) ';') == dec.end()) {
                out.insert(out.end(), dec.begin(), dec.end());
                done = true;
            }
        } else {
            done = ftfy_named_entity(&in[s], k - s, out);
        }
        if (!done) out.insert(out.end(), in.begin() + i, in.begin() + end);
        i = end;
    }
}

// One character through fix_c1_controls, fix_latin_ligatures, fix_character_width and
// uncurl_quotes, in ftfy's order (each is a per-character map).
static void ftfy_map_char(uint32_t c, ibl_cpts & out) {
    // ref: ftfy fixes.fix_c1_controls
    if (c >= 0x80 && c <= 0x9F) c = CP1252_C1[c - 0x80];
    // ref: ftfy fixes.fix_latin_ligatures
    uint32_t lig[3] = {c, 0, 0};
    for (const ibl_ligature & l : LIGATURES) {
        if (l.cp == c) {
            std::copy(l.to, l.to + 3, lig);
            break;
        }
    }
    for (int k = 0; k < 3 && lig[k]; ++k) {
        uint32_t x = lig[k];
        // ref: ftfy fixes.fix_character_width
        if (x == 0x3000) {
            x = ' ';
        } else if (x >= 0xFF01 && x <= 0xFF5E) {
            x -= 0xFEE0;
        } else if (x >= 0xFF5F && x <= 0xFFEE && WIDTH_MAP_FF5F[x - 0xFF5F]) {
            x = WIDTH_MAP_FF5F[x - 0xFF5F];
            if (x == 0xFFFF) {
                out.push_back(' ');
                x = 0x0304;
            }
        }
        // ref: ftfy fixes.uncurl_quotes
        if (x == 0x02BC || (x >= 0x2018 && x <= 0x201B)) x = '\'';
        if (x >= 0x201C && x <= 0x201F) x = '"';
        out.push_back(x);
    }
}

// ref: ftfy fixes.remove_control_chars (the control characters that are never wanted in text)
static bool ftfy_is_unwanted_control(uint32_t c) {
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
           c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

// ref: ftfy fix_and_explain on one line; `unescape` is its "auto" HTML setting for that line.
static void ftfy_fix_segment(ibl_cpts & seg, bool unescape) {
    ibl_cpts tmp, orig;
    for (int round = 0; round < FTFY_MAX_ROUNDS; ++round) {
        orig = seg;
        if (unescape) {
            ftfy_unescape(seg, tmp);
            seg.swap(tmp);
        }
        tmp.clear();
        for (uint32_t c : seg) ftfy_map_char(c, tmp);
        seg.swap(tmp);
        // ref: ftfy fixes.remove_terminal_escapes (ESC [ digits/';' letter), then remove_control_chars
        tmp.clear();
        for (size_t i = 0; i < seg.size(); ++i) {
            if (seg[i] == 0x1B && i + 1 < seg.size() && seg[i + 1] == '[') {
                size_t k = i + 2;
                while (k < seg.size() && (is_digit(seg[k]) || seg[k] == ';')) ++k;
                if (k < seg.size() && ((seg[k] | 0x20) >= 'a' && (seg[k] | 0x20) <= 'z')) {
                    i = k;
                    continue;
                }
            }
            if (!ftfy_is_unwanted_control(seg[i])) tmp.push_back(seg[i]);
        }
        seg.swap(tmp);
        // fix_line_breaks is left out: every break it rewrites is collapsed to one space later anyway.
        if (seg == orig) break;
    }
}

// ref: ftfy fix_text: line by line; HTML is unescaped until a line contains '<' (then never again).
static ibl_cpts ftfy_fix_text(const ibl_cpts & text) {
    ibl_cpts out, seg;
    out.reserve(text.size());
    bool unescape = true;
    for (size_t pos = 0; pos < text.size();) {
        size_t end = pos;
        while (end < text.size() && text[end] != '\n') ++end;
        if (end < text.size()) ++end;  // keep the '\n'
        seg.assign(text.begin() + pos, text.begin() + end);
        if (unescape && std::find(seg.begin(), seg.end(), (uint32_t) '<') != seg.end()) unescape = false;
        ftfy_fix_segment(seg, unescape);
        out.insert(out.end(), seg.begin(), seg.end());
        pos = end;
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Cleaning

static bool is_space(uint32_t c) { return unicode_cpt_flags_from_cpt(c).is_whitespace; }

struct ibl_cp_range {
    uint32_t first, last;
};

static bool in_ranges(const ibl_cp_range * r, size_t n, uint32_t c) {
    for (size_t i = 0; i < n; ++i) {
        if (c >= r[i].first && c <= r[i].last) return true;
    }
    return false;
}

// Case_Ignorable (Mn, Me, Cf, Lm, Sk, MidLetter...) beyond marks: the members that matter next to
// Latin, Greek and Cyrillic text.
static const ibl_cp_range CASE_IGNORABLE[] = {
    {'\'', '\''}, {'.', '.'}, {':', ':'}, {'^', '^'}, {'`', '`'}, {0xA8, 0xA8}, {0xAD, 0xAD}, {0xAF, 0xAF},
    {0xB4, 0xB4}, {0xB7, 0xB8}, {0x2B0, 0x2FF}, {0x374, 0x375}, {0x37A, 0x37A}, {0x384, 0x385}, {0x387, 0x387},
    {0x1D2C, 0x1D6A}, {0x1D78, 0x1D78}, {0x1D9B, 0x1DBF}, {0x1FBD, 0x1FBD}, {0x1FBF, 0x1FC1}, {0x1FCD, 0x1FCF},
    {0x1FDD, 0x1FDF}, {0x1FED, 0x1FEF}, {0x1FFD, 0x1FFE}, {0x200B, 0x200F}, {0x2018, 0x2019}, {0x2024, 0x2024},
    {0x2027, 0x2027}, {0x202A, 0x202E}, {0x2060, 0x206F}, {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C},
    {0xFEFF, 0xFEFF}, {0x1F3FB, 0x1F3FF},
};

// Cased letters without a case mapping (which is how is_cased finds most): Latin, IPA, Greek.
static const ibl_cp_range CASED_UNMAPPED[] = {
    {0xAA, 0xAA}, {0xBA, 0xBA}, {0x138, 0x138}, {0x149, 0x149}, {0x18D, 0x18D}, {0x19B, 0x19B}, {0x1AA, 0x1AB},
    {0x1BA, 0x1BA}, {0x1BE, 0x1BE}, {0x1F0, 0x1F0}, {0x221, 0x221}, {0x234, 0x239}, {0x250, 0x293}, {0x295, 0x2AF},
    {0x390, 0x390}, {0x3B0, 0x3B0}, {0x3D2, 0x3D4}, {0x3FC, 0x3FC}, {0x1D00, 0x1DBF}, {0x1E00, 0x1FFF},
    {0x2102, 0x2134}, {0x2139, 0x2149}, {0xFB00, 0xFB06},
};

// Approximations of Unicode's Case_Ignorable and Cased, which llama.cpp's tables lack: exact for
// Latin, Greek and Cyrillic (checked against CPython for every codepoint there).
static bool is_case_ignorable(uint32_t c) {
    return in_ranges(CASE_IGNORABLE, sizeof(CASE_IGNORABLE) / sizeof(CASE_IGNORABLE[0]), c) ||
           unicode_cpt_flags_from_cpt(c).is_accent_mark;  // Mn, Me (and Mc, which is not ignorable)
}

static bool is_cased(uint32_t c) {
    const unicode_cpt_flags f = unicode_cpt_flags_from_cpt(c);
    if (f.is_letter && in_ranges(CASED_UNMAPPED, sizeof(CASED_UNMAPPED) / sizeof(CASED_UNMAPPED[0]), c)) return true;
    // anything with a case mapping either way: letters, but also e.g. Roman numerals and circled letters
    return f.is_lowercase || f.is_uppercase || unicode_tolower(c) != c || simple_upper(c) != c;
}

// ref: CPython unicodeobject.c handle_capital_sigma: Σ is final after a cased letter (skipping
// case-ignorables) unless a cased letter follows (skipping case-ignorables).
static bool is_final_sigma(const ibl_cpts & s, size_t i) {
    size_t j = i;
    while (j > 0 && is_case_ignorable(s[j - 1])) --j;
    if (j == 0 || !is_cased(s[j - 1])) return false;
    size_t k = i + 1;
    while (k < s.size() && is_case_ignorable(s[k])) ++k;
    return k == s.size() || !is_cased(s[k]);
}

// ref: basic_clean (ftfy.fix_text, html.unescape twice, strip), whitespace_clean (\s+ -> " ",
// strip) and str.lower() of SimpleTokenizer.encode.
static ibl_cpts clean_cpts(const ibl_cpts & text) {
    ibl_cpts fixed = ftfy_fix_text(text), once, twice;
    html_unescape_cpts(fixed, once);
    html_unescape_cpts(once, twice);
    // strip + collapse: Python's str.isspace also counts U+001C-U+001F, but ftfy removed those
    // and html.unescape cannot produce them, so \s (White_Space) is the only class that matters.
    ibl_cpts spaced;
    spaced.reserve(twice.size());
    bool pending_space = false;
    for (uint32_t c : twice) {
        if (is_space(c)) {
            pending_space = !spaced.empty();
            continue;
        }
        if (pending_space) spaced.push_back(' ');
        pending_space = false;
        spaced.push_back(c);
    }
    ibl_cpts out;
    out.reserve(spaced.size());
    for (size_t i = 0; i < spaced.size(); ++i) {
        const uint32_t c = spaced[i];
        if (c == 0x130) {  // İ: SpecialCasing's unconditional lower case is two characters
            out.push_back('i');
            out.push_back(0x307);
        } else if (c == 0x3A3) {
            out.push_back(is_final_sigma(spaced, i) ? 0x3C2 : 0x3C3);
        } else {
            out.push_back(unicode_tolower(c));
        }
    }
    return out;
}

std::string ibl_bpe_clean(const std::string & text) {
    const ibl_cpts c = clean_cpts(text_to_cpts(text));
    return cpts_to_utf8(c.data(), c.size());
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenisation
// ref: SimpleTokenizer.pat, with re.IGNORECASE:
//   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// matched at each position in that order; a position that matches nothing (space) is skipped.

enum ibl_split_class { SPLIT_SKIP, SPLIT_LETTER, SPLIT_NUMBER, SPLIT_OTHER };

static ibl_split_class split_class(uint32_t c) {
    // U+0345 (combining ypogegrammeni) case-folds to ι, a letter: under IGNORECASE it is outside
    // the "other" class but not matched by [\p{L}] either, so the regex module skips it.
    if (c == 0x345) return SPLIT_SKIP;
    const unicode_cpt_flags f = unicode_cpt_flags_from_cpt(c);
    if (f.is_whitespace) return SPLIT_SKIP;
    if (f.is_letter) return SPLIT_LETTER;
    if (f.is_number) return SPLIT_NUMBER;
    return SPLIT_OTHER;
}

// c equals the pattern character p under the regex module's simple case folding.
static bool fold_eq(uint32_t c, char p) {
    if (c == (uint8_t) p) return true;
    if (p >= 'a' && p <= 'z' && c == (uint32_t) (p - 32)) return true;
    return (p == 's' && c == 0x17F) || (p == 'k' && c == 0x212A);  // ſ and the Kelvin sign
}

static size_t match_literal(const ibl_cpts & s, size_t i, const char * lit) {
    size_t k = 0;
    for (; lit[k]; ++k) {
        if (i + k >= s.size() || !fold_eq(s[i + k], lit[k])) return 0;
    }
    return k;
}

// Pieces of cleaned text as (start, length) in codepoints.
static void split_cpts(const ibl_cpts & s, std::vector<std::pair<size_t, size_t>> & pieces) {
    static const char * const LITERALS[] = {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    pieces.clear();
    size_t i = 0;
    while (i < s.size()) {
        size_t len = 0;
        if (s[i] == '<' || s[i] == '\'') {
            for (const char * lit : LITERALS) {
                if ((len = match_literal(s, i, lit)) != 0) break;
            }
        }
        if (len == 0) {
            const ibl_split_class cls = split_class(s[i]);
            if (cls == SPLIT_SKIP) {
                ++i;
                continue;
            }
            len = 1;
            if (cls != SPLIT_NUMBER) {  // letters and "other" run; a number is one character
                while (i + len < s.size() && split_class(s[i + len]) == cls) ++len;
            }
        }
        pieces.emplace_back(i, len);
        i += len;
    }
}

std::vector<std::string> ibl_bpe_split(const std::string & cleaned) {
    const ibl_cpts s = text_to_cpts(cleaned);
    std::vector<std::pair<size_t, size_t>> pieces;
    split_cpts(s, pieces);
    std::vector<std::string> out;
    out.reserve(pieces.size());
    for (const auto & p : pieces) out.push_back(cpts_to_utf8(s.data() + p.first, p.second));
    return out;
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

static const char * const TOKEN_SOT_TEXT = "<|startoftext|>";
static const char * const TOKEN_EOT_TEXT = "<|endoftext|>";

// First characters of a merge line for an error message (the line may be long or binary).
static std::string merge_excerpt(const std::string & line) {
    std::string s = line.substr(0, 40);
    for (char & c : s) {
        if ((unsigned char) c < 0x20) c = '?';
    }
    return line.size() > 40 ? s + "..." : s;
}

ibl_bpe::ibl_bpe(const std::vector<std::string> & merges) {
    if (merges.size() != (size_t) IBL_BPE_N_MERGES) {
        ibl_throw("ERR_TOKENIZER_INVALID", "CLIP BPE: expected %d merges (lines 1-%d of the merges file), got %zu",
                  IBL_BPE_N_MERGES, IBL_BPE_N_MERGES, merges.size());
    }
    // ref: bytes_to_unicode: printable Latin-1 bytes stand for themselves; the other 68 bytes
    // (controls, space, 0x7F-0xA0, 0xAD) become U+0100... in byte order, so that no token text
    // contains whitespace or control characters. The vocabulary lists the printable ones first.
    uint32_t byte_cp[256];
    std::vector<int> order;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        if (printable) {
            byte_cp[b] = b;
            order.push_back(b);
        }
    }
    for (int b = 0, n = 0; b < 256; ++b) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        if (!printable) {
            byte_cp[b] = 256 + n++;
            order.push_back(b);
        }
    }
    vocab.reserve(IBL_BPE_N_VOCAB);
    vocab_bytes.reserve(IBL_BPE_N_VOCAB);
    for (int k = 0; k < 256; ++k) {
        const int b = order[k];
        byte_id[b] = k;
        std::string t;
        utf8_append(t, byte_cp[b]);
        vocab.push_back(t);
        vocab_bytes.push_back(std::string(1, (char) b));
    }
    for (int k = 0; k < 256; ++k) {
        vocab.push_back(vocab[k] + "</w>");
        vocab_bytes.push_back(vocab_bytes[k] + "</w>");  // '<', '/', 'w', '>' stand for themselves
    }
    vocab_ids.reserve(IBL_BPE_N_VOCAB);
    for (int32_t id = 0; id < (int32_t) vocab.size(); ++id) vocab_ids.emplace(vocab[id], id);

    // ref: SimpleTokenizer.__init__: one token per merge (the two parts joined), rank = line index.
    // A part must already be a token, which also makes every pair that contains a merged token
    // rank after that token's own merge (bpe_piece relies on it).
    ranks.reserve(IBL_BPE_N_MERGES);
    for (int32_t r = 0; r < IBL_BPE_N_MERGES; ++r) {
        const std::string & line = merges[r];
        const size_t sp = line.find(' ');
        if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() || line.find(' ', sp + 1) != std::string::npos) {
            ibl_throw("ERR_TOKENIZER_INVALID", "CLIP BPE merge %d is not two tokens separated by one space: '%s'",
                      r + 1, merge_excerpt(line).c_str());
        }
        const std::string left = line.substr(0, sp), right = line.substr(sp + 1);
        const auto a = vocab_ids.find(left), b = vocab_ids.find(right);
        if (a == vocab_ids.end() || b == vocab_ids.end()) {
            ibl_throw("ERR_TOKENIZER_INVALID", "CLIP BPE merge %d ('%s') uses a token that no earlier merge made",
                      r + 1, merge_excerpt(line).c_str());
        }
        const int32_t id = (int32_t) vocab.size();
        if (!vocab_ids.emplace(left + right, id).second) {
            ibl_throw("ERR_TOKENIZER_INVALID", "CLIP BPE merge %d ('%s') makes a token that already exists",
                      r + 1, merge_excerpt(line).c_str());
        }
        ranks.emplace(((uint64_t) a->second << 32) | (uint32_t) b->second, r);
        vocab.push_back(left + right);
        vocab_bytes.push_back(vocab_bytes[a->second] + vocab_bytes[b->second]);
    }
    for (const char * special : {TOKEN_SOT_TEXT, TOKEN_EOT_TEXT}) {
        if (!vocab_ids.emplace(special, (int32_t) vocab.size()).second) {
            ibl_throw("ERR_TOKENIZER_INVALID", "CLIP BPE merges make the special token %s", special);
        }
        vocab.push_back(special);
        vocab_bytes.push_back(special);
    }
}

int32_t ibl_bpe::pair_rank(int32_t a, int32_t b) const {
    const auto it = ranks.find(((uint64_t) a << 32) | (uint32_t) b);
    return it == ranks.end() ? -1 : it->second;
}

// ref: SimpleTokenizer.bpe. Upstream repeatedly takes the lowest-ranked adjacent pair and merges all
// its occurrences left to right (O(n^2)). A heap of (rank, position) does the same in O(n log n):
// merges only ever create pairs of a higher rank, so each rank's occurrences are popped together,
// left to right, and stale entries (a side already merged away) are skipped.
void ibl_bpe::bpe_piece(const std::string & piece, std::vector<int32_t> & out) const {
    const bool cacheable = piece.size() <= CACHE_MAX_PIECE;
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mutex);
        const auto it = cache.find(piece);
        if (it != cache.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const int32_t n = (int32_t) piece.size();
    std::vector<int32_t> sym(n), next(n), prev(n);
    for (int32_t i = 0; i < n; ++i) {
        sym[i]  = byte_id[(uint8_t) piece[i]] + (i == n - 1 ? 256 : 0);  // the last byte carries "</w>"
        next[i] = i + 1 < n ? i + 1 : -1;
        prev[i] = i - 1;
    }
    using entry = std::pair<int32_t, int32_t>;  // (rank, index of the left symbol)
    std::priority_queue<entry, std::vector<entry>, std::greater<entry>> heap;
    auto push = [&](int32_t l) {
        if (l < 0 || next[l] < 0) return;
        const int32_t r = pair_rank(sym[l], sym[next[l]]);
        if (r >= 0) heap.emplace(r, l);
    };
    for (int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
        const entry e = heap.top();
        heap.pop();
        const int32_t l = e.second, r = next[l];
        if (sym[l] < 0 || r < 0 || pair_rank(sym[l], sym[r]) != e.first) continue;  // stale
        sym[l] = 512 + e.first;
        sym[r] = -1;
        next[l] = next[r];
        if (next[r] >= 0) prev[next[r]] = l;
        push(prev[l]);
        push(l);
    }
    std::vector<int32_t> word;
    for (int32_t i = 0; i >= 0; i = next[i]) word.push_back(sym[i]);
    out.insert(out.end(), word.begin(), word.end());
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mutex);
        if (cache.size() >= CACHE_MAX_ENTRIES) cache.clear();
        cache.emplace(piece, std::move(word));
    }
}

// ref: SimpleTokenizer.encode
std::vector<int32_t> ibl_bpe::encode(const std::string & text) const {
    const ibl_cpts cleaned = clean_cpts(text_to_cpts(text));
    std::vector<std::pair<size_t, size_t>> pieces;
    split_cpts(cleaned, pieces);
    std::vector<int32_t> ids;
    ids.reserve(cleaned.size() / 2 + 1);
    std::string piece;
    for (const auto & p : pieces) {
        piece = cpts_to_utf8(cleaned.data() + p.first, p.second);
        // upstream's bpe cache is seeded with the two specials, so only their exact spelling maps to them
        if (piece == TOKEN_SOT_TEXT) {
            ids.push_back(IBL_BPE_TOKEN_SOT);
        } else if (piece == TOKEN_EOT_TEXT) {
            ids.push_back(IBL_BPE_TOKEN_EOT);
        } else {
            bpe_piece(piece, ids);
        }
    }
    return ids;
}

std::vector<int32_t> ibl_bpe::tokenize(const std::string & text, int context_length, ibl_bpe_trunc mode) const {
    return ibl_bpe_make_row(encode(text), context_length, mode);
}

// ref: SimpleTokenizer.decode
std::string ibl_bpe::decode(const std::vector<int32_t> & ids) const {
    std::string bytes;
    for (int32_t id : ids) {
        if (id < 0 || id >= n_vocab()) {
            ibl_throw("ERR_INVALID_ARG", "token id %d is outside the CLIP vocabulary (0-%d)", id, n_vocab() - 1);
        }
        bytes += vocab_bytes[id];
    }
    // UTF-8 with errors="replace", then "</w>" -> " " (ASCII, so the order of the two does not matter)
    std::string text;
    text.reserve(bytes.size());
    const uint8_t * s = (const uint8_t *) bytes.data();
    for (size_t i = 0; i < bytes.size();) {
        uint32_t cp = 0;
        const int len = utf8_decode_one(s + i, bytes.size() - i, cp);
        if (len > 0) {
            if (cp == '<' && bytes.compare(i, 4, "</w>") == 0) {
                text += ' ';
                i += 4;
                continue;
            }
            text.append(bytes, i, len);
            i += len;
        } else {
            utf8_append(text, 0xFFFD);
            i += -len;
        }
    }
    return text;
}

const std::string & ibl_bpe::token_text(int32_t id) const {
    static const std::string none;
    return id >= 0 && id < n_vocab() ? vocab[id] : none;
}

int32_t ibl_bpe::token_id(const std::string & text) const {
    const auto it = vocab_ids.find(text);
    return it == vocab_ids.end() ? -1 : it->second;
}

// ref: ImageBind SimpleTokenizer.__call__ (IMAGEBIND) and the ImageBind-LLM copy (IMAGEBIND_LLM)
std::vector<int32_t> ibl_bpe_make_row(const std::vector<int32_t> & ids, int context_length, ibl_bpe_trunc mode) {
    if (context_length < 1 || context_length > MAX_CONTEXT_LENGTH) {
        ibl_throw("ERR_INVALID_ARG", "context length must be between 1 and %d, got %d", MAX_CONTEXT_LENGTH, context_length);
    }
    const size_t L = (size_t) context_length;
    std::vector<int32_t> row(L, 0);
    std::vector<int32_t> full;
    full.reserve(ids.size() + 2);
    full.push_back(IBL_BPE_TOKEN_SOT);
    full.insert(full.end(), ids.begin(), ids.end());
    switch (mode) {
        case IBL_BPE_TRUNC_IMAGEBIND: {
            // tokens[:context_length - 1] + [eot]
            const size_t keep = std::min(full.size(), L - 1);
            std::copy(full.begin(), full.begin() + keep, row.begin());
            row[keep] = IBL_BPE_TOKEN_EOT;
            break;
        }
        case IBL_BPE_TRUNC_IMAGEBIND_LLM: {
            // (tokens + [eot])[:context_length]
            full.push_back(IBL_BPE_TOKEN_EOT);
            std::copy(full.begin(), full.begin() + std::min(full.size(), L), row.begin());
            break;
        }
        default:
            ibl_throw("ERR_INVALID_ARG", "unknown CLIP truncation mode %d", (int) mode);
    }
    return row;
}

size_t ibl_bpe_pooled_index(const std::vector<int32_t> & row) {
    if (row.empty()) ibl_throw("ERR_INVALID_ARG", "cannot pool an empty token row");
    // argmax returns the first maximum
    return (size_t) (std::max_element(row.begin(), row.end()) - row.begin());
}
