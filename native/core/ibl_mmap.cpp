#include "ibl_mmap.h"

#ifdef _WIN32
#    ifndef NOMINMAX
#        define NOMINMAX
#    endif
#    include <windows.h>
#else
#    include <fcntl.h>
#    include <sys/mman.h>
#    include <unistd.h>
#endif

bool ibl_file_map::map(const std::string & path, uint64_t file_size) {
    if (file_size == 0 || addr) return false;
#ifdef _WIN32
    HANDLE f = CreateFileA(path.c_str(), GENERIC_READ, FILE_SHARE_READ, nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (f == INVALID_HANDLE_VALUE) return false;
    HANDLE m = CreateFileMappingA(f, nullptr, PAGE_READONLY, 0, 0, nullptr);
    CloseHandle(f);
    if (!m) return false;
    void * p = MapViewOfFile(m, FILE_MAP_READ, 0, 0, 0);
    if (!p) {
        CloseHandle(m);
        return false;
    }
    mapping = m;
    addr = p;
#else
    const int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) return false;
    void * p = mmap(nullptr, (size_t) file_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return false;
    addr = p;
#endif
    size = file_size;
    return true;
}

ibl_file_map::~ibl_file_map() {
    if (!addr) return;
#ifdef _WIN32
    UnmapViewOfFile(addr);
    CloseHandle((HANDLE) mapping);
#else
    munmap(addr, (size_t) size);
#endif
}
