#include "gateway/server/tls_io.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>

#include "gateway/server/io.h"

namespace sluice::tls {
namespace {
constexpr size_t kRecord = 16 * 1024;
}  // namespace

ssize_t read(SSL* ssl, evbuffer* buf, size_t max, Want& want, bool& pending) {
  want = Want::kNothing;
  pending = false;
  evbuffer_iovec v;
  if (evbuffer_reserve_space(buf, static_cast<ev_ssize_t>(max), &v, 1) < 1) {
    errno = ENOMEM;
    return -1;
  }
  ERR_clear_error();
  int n = SSL_read(ssl, v.iov_base, static_cast<int>(std::min(v.iov_len, max)));
  if (n > 0) {
    v.iov_len = static_cast<size_t>(n);
    evbuffer_commit_space(buf, &v, 1);
    pending = SSL_pending(ssl) > 0;
    return n;
  }
  evbuffer_commit_space(buf, &v, 0);
  switch (SSL_get_error(ssl, n)) {
    case SSL_ERROR_WANT_READ:
      want = Want::kRead;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      want = Want::kWrite;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      if (errno == 0) return 0;  // EOF without close_notify
      return -1;
    default:
      ERR_clear_error();
      errno = EPROTO;
      return -1;
  }
}

int write(SSL* ssl, evbuffer* buf, Want& want) {
  want = Want::kNothing;
  int total = 0;
  while (evbuffer_get_length(buf) > 0) {
    // The same bytes (or more) after a WANT_*: OpenSSL's retry rule, which
    // SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows at another address.
    size_t len = std::min(evbuffer_get_length(buf), kRecord);
    const unsigned char* data = evbuffer_pullup(buf, static_cast<ev_ssize_t>(len));
    ERR_clear_error();
    int n = SSL_write(ssl, data, static_cast<int>(len));
    if (n > 0) {
      evbuffer_drain(buf, static_cast<size_t>(n));
      total += n;
      continue;
    }
    int err = SSL_get_error(ssl, n);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
      want = err == SSL_ERROR_WANT_READ ? Want::kRead : Want::kWrite;
      errno = EAGAIN;
      return total > 0 ? total : -1;
    }
    ERR_clear_error();
    errno = EPIPE;
    return -1;
  }
  return total;
}

ssize_t EventIo::read(int fd, SSL* ssl, evbuffer* in, size_t max, event* read_ev, event* write_ev,
                      bool& writing) {
  if (ssl == nullptr) return io::readInto(in, fd, max);
  Want want;
  bool pending;
  ssize_t n = tls::read(ssl, in, max, want, pending);
  if (n > 0) {
    if (pending) event_active(read_ev, EV_READ, 0);
    if (write_wants_read) {
      write_wants_read = false;
      event_active(write_ev, EV_WRITE, 0);
    }
  } else if (want == Want::kWrite && !writing) {
    // Rare (a TLS 1.3 key update): retried once the socket is writable.
    event_add(write_ev, nullptr);
    writing = true;
  }
  return n;
}

int EventIo::write(int fd, SSL* ssl, evbuffer* out) {
  if (ssl == nullptr) return evbuffer_write(out, fd);
  Want want;
  int n = tls::write(ssl, out, want);
  write_wants_read = want == Want::kRead;
  return n;
}

}  // namespace sluice::tls
