// Moving bytes between an evbuffer and a non-blocking TLS session, for every TLS
// connection that does its own I/O (client connections, upstream connections): the
// same read and write rules in one place.
#pragma once

#include <openssl/types.h>
#include <sys/types.h>

#include <cstddef>

struct evbuffer;
struct event;

namespace sluice::tls {

// What a TLS call that could not go on waits for. Reads may need the socket writable
// (a TLS 1.3 key update), writes may need it readable.
enum class Want { kNothing, kRead, kWrite };

// SSL_read into `buf`, at most `max` bytes: bytes read; 0 at the end (close_notify, or
// EOF without it); -1 with errno (EAGAIN when OpenSSL waits, `want` says for what).
// `pending` tells whether OpenSSL still holds decrypted bytes the socket's readiness
// will not announce.
ssize_t read(SSL* ssl, evbuffer* buf, size_t max, Want& want, bool& pending);

// SSL_write of `buf`, one record (16 KiB) per call so that small chunks leave together:
// bytes written, or -1 with errno (EAGAIN when OpenSSL waits, `want` says for what).
int write(SSL* ssl, evbuffer* buf, Want& want);

// The I/O of a connection on a libevent loop, plain (`ssl` null) or TLS, with the
// wake-ups TLS needs: a record decrypted in part stays in OpenSSL (the socket's
// readiness will not show it: read_ev is activated), a read may need the socket
// writable (write_ev is armed, `writing` set), a write may need a read first
// (`write_wants_read`, cleared and write_ev activated by the next read).
// Only the flag is state: the rest is the connection's own, passed in (connections are
// many; they stay small).
struct EventIo {
  bool write_wants_read = false;

  // As io::readInto; `writing` tells (and is set when arming) whether write_ev is armed.
  ssize_t read(int fd, SSL* ssl, evbuffer* in, size_t max, event* read_ev, event* write_ev,
               bool& writing);
  int write(int fd, SSL* ssl, evbuffer* out);  // as evbuffer_write
};

}  // namespace sluice::tls
