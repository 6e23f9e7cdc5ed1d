#include "ibl_error.h"

#include <cstdarg>
#include <cstdio>
#include <vector>

void ibl_throw(const char * code, const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    const int n = vsnprintf(nullptr, 0, fmt, ap);
    va_end(ap);
    std::vector<char> buf(n > 0 ? n + 1 : 1);
    vsnprintf(buf.data(), buf.size(), fmt, ap2);
    va_end(ap2);
    throw ibl_error(code, std::string(buf.data()));
}
