// Small socket helpers shared by the downstream and upstream sides.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

struct evbuffer;
struct sockaddr_storage;

namespace sluice::io {

// Reads up to `max` bytes from a non-blocking socket straight into `buf` (no ioctl, no
// intermediate copy). Returns bytes read, 0 on EOF, -1 with errno set (EAGAIN included).
ssize_t readInto(evbuffer* buf, int fd, size_t max);

// Text form of an address without the port ("127.0.0.1", "::1").
std::string ipString(const sockaddr_storage& addr);

// Standard reason phrase for a status code ("" for unknown codes).
std::string_view reasonPhrase(unsigned status);

// Appends an unsigned integer in decimal to `out`.
void appendUint(std::string& out, uint64_t value);

}  // namespace sluice::io
