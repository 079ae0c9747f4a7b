// Server-side TLS of a listener: the OpenSSL contexts built from its `tls:` settings
// (one per certificate, chosen by SNI), made on the main thread when a config loads and
// shared, read-only, by every worker. A reload makes new ones; connections accepted
// before keep the context they started with (an SSL holds a reference to it), so
// certificates change without dropping a connection.
#pragma once

#include <openssl/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

namespace sluice::tls {

class ServerContext {
 public:
  // Null with `error` set ("FILE: why") when a file cannot be used.
  static std::shared_ptr<const ServerContext> make(const config::ListenerTls& config,
                                                   std::string& error);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // A new server-side session on socket `fd` (accept state). Null if OpenSSL fails.
  SSL* newSession(int fd) const;
  config::Duration handshakeTimeout() const { return handshake_timeout_; }

  // After the handshake: the verified client certificate's subject ("" when none), in
  // RFC 2253 form ("CN=client,O=Example").
  static std::string clientSubject(SSL* ssl);

 private:
  struct Private {};  // make() is the only way in, through make_shared

 public:
  explicit ServerContext(Private) {}

 private:
  static int onServerName(SSL* ssl, int* alert, void* arg);
  static int onAlpn(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                    const unsigned char* in, unsigned int inlen, void* arg);
  static int onStatus(SSL* ssl, void* arg);
  SSL_CTX* forName(const std::string& name) const;

  std::vector<SSL_CTX*> contexts_;                        // by certificate; [0] is the default
  std::vector<std::pair<std::string, size_t>> exact_;     // name → context
  std::vector<std::pair<std::string, size_t>> wildcard_;  // "example.com" of "*.example.com"
  std::string alpn_wire_;  // the offered protocols in ALPN wire format
  std::string ocsp_;       // DER OCSP response stapled for the default certificate
  config::Duration handshake_timeout_{10'000};
  unsigned char scope_[32] = {};  // session id context, and the ticket keys' scope
};

}  // namespace sluice::tls
