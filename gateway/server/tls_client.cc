#include "gateway/server/tls_client.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "gateway/server/log.h"

namespace sluice::tls {

bool isIpLiteral(const std::string& host) {
  in6_addr buf;
  return inet_pton(AF_INET, host.c_str(), &buf) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &buf) == 1;
}

SSL_CTX* makeClientContext(bool verify, const std::string& ca_file, const char* who) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return nullptr;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (!verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    return ctx;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // Read once, here; the config loader already checked that the file holds PEM.
  int ok = ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx)
                           : SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr);
  if (ok != 1) {
    LOG_ERROR("%s: cannot load the CA certificates %s: every TLS handshake will fail", who,
              ca_file.empty() ? "(system default)" : ca_file.c_str());
    ERR_clear_error();
  }
  return ctx;
}

namespace {
SSL* newSession(SSL_CTX* ctx, const std::string& host, bool verify) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return nullptr;
  if (!isIpLiteral(host)) {
    SSL_set_tlsext_host_name(ssl, host.c_str());
    if (verify) SSL_set1_host(ssl, host.c_str());
  } else if (verify) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  }
  return ssl;
}
}  // namespace

SSL* newClientSession(SSL_CTX* ctx, const std::string& host, bool verify, int fd) {
  SSL* ssl = newSession(ctx, host, verify);
  if (ssl == nullptr) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  return ssl;
}

bufferevent* newClientBufferevent(event_base* base, SSL_CTX* ctx, const std::string& host,
                                  bool verify, int options) {
  SSL* ssl = newSession(ctx, host, verify);
  if (ssl == nullptr) return nullptr;
  bufferevent* bev =
      bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, options);
  if (bev == nullptr) {
    SSL_free(ssl);
    return nullptr;
  }
  // Servers often close without close_notify; the protocol's framing tells where
  // replies end.
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  return bev;
}

std::string lastError(bufferevent* bev) {
  unsigned long e = bufferevent_get_openssl_error(bev);
  if (e == 0) e = ERR_peek_last_error();
  if (e == 0) return "";
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  ERR_clear_error();
  return text;
}

}  // namespace sluice::tls
