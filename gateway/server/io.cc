#include "gateway/server/io.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <charconv>

namespace sluice::io {

ssize_t readInto(evbuffer* buf, int fd, size_t max) {
  evbuffer_iovec vec[2];
  int n = evbuffer_reserve_space(buf, static_cast<ev_ssize_t>(max), vec, 2);
  if (n <= 0) {
    errno = ENOMEM;
    return -1;
  }
  iovec iov[2];
  size_t total = 0;
  for (int i = 0; i < n; ++i) {
    size_t len = vec[i].iov_len;
    if (total + len > max) len = max - total;
    iov[i].iov_base = vec[i].iov_base;
    iov[i].iov_len = len;
    total += len;
  }
  ssize_t r;
  do {
    r = ::readv(fd, iov, n);
  } while (r < 0 && errno == EINTR);
  if (r <= 0) {
    int saved = errno;
    evbuffer_commit_space(buf, vec, 0);
    errno = saved;
    return r;
  }
  size_t left = static_cast<size_t>(r);
  int used = 0;
  for (int i = 0; i < n && left > 0; ++i) {
    vec[i].iov_len = std::min(left, iov[i].iov_len);
    left -= vec[i].iov_len;
    used = i + 1;
  }
  evbuffer_commit_space(buf, vec, used);
  return r;
}

std::string ipString(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, text, sizeof text);
  } else if (addr.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr, text, sizeof text);
  }
  return text;
}

std::string_view reasonPhrase(unsigned status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "";
  }
}

void appendUint(std::string& out, uint64_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

}  // namespace sluice::io
