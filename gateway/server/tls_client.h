// Client-side TLS over libevent, shared by every outgoing TLS connection (Redis,
// the Lambda Invoke API): one way to build a verifying SSL_CTX and a connecting
// bufferevent, so that verification rules cannot drift apart between clients.
#pragma once

#include <openssl/types.h>

#include <string>

struct bufferevent;
struct event_base;

namespace sluice::tls {

// TLS 1.2 or later; the peer is verified against `ca_file` (or the system store when
// empty) unless `verify` is false. A CA file that cannot be loaded is logged once,
// naming `who`: every handshake would then fail verification. Null only when OpenSSL
// cannot make a context.
SSL_CTX* makeClientContext(bool verify, const std::string& ca_file, const char* who);

// A bufferevent that will start a TLS handshake once connected: SNI and name checks
// for a host name, address checks for an IP literal. Null on failure.
bufferevent* newClientBufferevent(event_base* base, SSL_CTX* ctx, const std::string& host,
                                  bool verify, int options);

// A client session for `host` on socket `fd` (connect state), with the same SNI and
// name checks. Null on failure.
SSL* newClientSession(SSL_CTX* ctx, const std::string& host, bool verify, int fd);

// The OpenSSL error behind a failed TLS bufferevent ("" if none), for logs.
std::string lastError(bufferevent* bev);

bool isIpLiteral(const std::string& host);

}  // namespace sluice::tls
