// Turns the bytes of generated tokens into text as it becomes final, so that what is streamed is
// exactly the answer: the concatenation of every piece push() and finish() return equals text().
//  - UTF-8 is decoded as SentencePiece decodes byte pieces: a byte that does not start a valid
//    sequence (overlong forms, surrogates and code points above U+10FFFF are invalid) becomes U+FFFD;
//    an incomplete sequence at the end waits for the next token's bytes.
//  - Stop strings: the text ends before the first one; a tail that could still become one is held
//    back until it cannot.
#pragma once

#include <string>
#include <vector>

class ibl_text_stream {
public:
    explicit ibl_text_stream(std::vector<std::string> stops = {});

    // Adds the bytes of one token; returns the text that became final (often empty).
    std::string push(const std::string & bytes);
    // No more bytes: returns the rest (an incomplete UTF-8 tail as U+FFFD, a held stop-string prefix).
    std::string finish();

    bool                stopped() const { return stopped_; }  // a stop string was found
    const std::string & text() const { return text_; }         // the final text so far

private:
    std::string decode(bool at_end);
    std::string release(bool at_end);

    std::vector<std::string> stops_;
    std::string              bytes_;    // undecoded tail (an incomplete UTF-8 sequence)
    std::string              text_;     // decoded text, up to any stop string
    size_t                   emitted_ = 0;
    bool                     stopped_ = false;
};

// Decodes a whole byte string the same way (invalid sequences → U+FFFD).
std::string ibl_utf8_sanitize(const std::string & bytes);
