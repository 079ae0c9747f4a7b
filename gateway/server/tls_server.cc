#include "gateway/server/tls_server.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>

#include "gateway/http/message.h"

namespace sluice::tls {
namespace {

// Mozilla's "intermediate" TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3
// suites are OpenSSL's defaults (all of them are fine).
constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string lastError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  return text;
}

// Session ticket keys rotate every hour without any shared state to update: the key of
// hour N is derived from a random secret made once per process, so every worker and
// every context (reloads included) agrees on it. Tickets of the two hours before still
// decrypt (and are renewed); older ones mean a full handshake.
constexpr time_t kTicketPeriod = 3600;
constexpr int kTicketEpochsAccepted = 3;

struct TicketKey {
  unsigned char name[16];
  unsigned char aes[32];
  unsigned char hmac[32];
};

const unsigned char* ticketSecret() {
  static unsigned char secret[32];
  // A function-local static's initialisation runs once, whichever worker comes first.
  static const bool made = RAND_bytes(secret, sizeof secret) == 1;
  if (!made) abort();
  return secret;
}

// Keys of one listener's TLS settings (`scope`, its session id context): a ticket of
// one listener, or of settings a reload replaced, does not decrypt under another.
TicketKey ticketKey(const unsigned char* scope, uint64_t epoch) {
  TicketKey k;
  unsigned char block[32];
  unsigned int len = 0;
  for (uint8_t part = 0; part < 3; ++part) {
    unsigned char msg[32 + 9];
    std::memcpy(msg, scope, 32);
    for (int i = 0; i < 8; ++i) msg[32 + i] = static_cast<unsigned char>(epoch >> (8 * i));
    msg[40] = part;
    HMAC(EVP_sha256(), ticketSecret(), 32, msg, sizeof msg, block, &len);
    if (part == 0) std::memcpy(k.name, block, sizeof k.name);
    if (part == 1) std::memcpy(k.aes, block, sizeof k.aes);
    if (part == 2) std::memcpy(k.hmac, block, sizeof k.hmac);
  }
  return k;
}

int onTicketKey(SSL* ssl, unsigned char name[16], unsigned char iv[16], EVP_CIPHER_CTX* cipher,
                EVP_MAC_CTX* mac, int encrypt) {
  const unsigned char* scope =
      static_cast<const unsigned char*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (scope == nullptr) return 0;
  uint64_t now = static_cast<uint64_t>(time(nullptr) / kTicketPeriod);
  auto setMac = [mac](const TicketKey& k) {
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(k.hmac),
                                          sizeof k.hmac),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_end()};
    return EVP_MAC_CTX_set_params(mac, params) == 1;
  };
  if (encrypt) {
    TicketKey k = ticketKey(scope, now);
    if (RAND_bytes(iv, 16) != 1) return -1;
    std::memcpy(name, k.name, sizeof k.name);
    if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k.aes, iv) != 1) return -1;
    return setMac(k) ? 1 : -1;
  }
  for (int age = 0; age < kTicketEpochsAccepted; ++age) {
    TicketKey k = ticketKey(scope, now - static_cast<uint64_t>(age));
    if (std::memcmp(name, k.name, sizeof k.name) != 0) continue;
    if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k.aes, iv) != 1) return -1;
    if (!setMac(k)) return -1;
    return age == 0 ? 1 : 2;  // 2: valid, but issue a ticket under the current key
  }
  return 0;  // unknown or expired key: a full handshake
}

void hashFile(EVP_MD_CTX* md, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EVP_DigestUpdate(md, path.data(), path.size() + 1);
  EVP_DigestUpdate(md, bytes.data(), bytes.size());
}

// What a resumed session must share with the listener that resumes it: the
// certificates, who may connect (client_auth, the client CA file's content) and the
// protocol floor. OpenSSL refuses to resume a session of another session id context,
// so a session from a listener without client certificates (or from before a reload
// that changed the CA) cannot skip the certificate check of this one.
void sessionScope(const config::ListenerTls& config, unsigned char out[32]) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
  for (const config::TlsCertificate& c : config.certificates) hashFile(md, c.certificate);
  if (!config.client_ca.empty()) hashFile(md, config.client_ca);
  unsigned char settings[2] = {static_cast<unsigned char>(config.client_auth),
                               static_cast<unsigned char>(config.min_version & 0xff)};
  EVP_DigestUpdate(md, settings, sizeof settings);
  unsigned int len = 0;
  EVP_DigestFinal_ex(md, out, &len);
  EVP_MD_CTX_free(md);
}

}  // namespace

std::shared_ptr<const ServerContext> ServerContext::make(const config::ListenerTls& config,
                                                         std::string& error) {
  auto out = std::make_shared<ServerContext>(Private{});
  out->handshake_timeout_ = config.handshake_timeout;
  sessionScope(config, out->scope_);
  for (const std::string& proto : config.alpn) {
    out->alpn_wire_.push_back(static_cast<char>(proto.size()));
    out->alpn_wire_ += proto;
  }
  if (!config.ocsp_staple.empty()) {
    std::ifstream in(config.ocsp_staple, std::ios::binary);
    out->ocsp_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (out->ocsp_.empty()) {
      error = config.ocsp_staple + ": cannot read the OCSP response";
      return nullptr;
    }
  }
  for (size_t i = 0; i < config.certificates.size(); ++i) {
    const config::TlsCertificate& cert = config.certificates[i];
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) {
      error = "cannot create a TLS context: " + lastError();
      return nullptr;
    }
    out->contexts_.push_back(ctx);
    SSL_CTX_set_min_proto_version(ctx, config.min_version);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION |
                                 (config.session_tickets ? 0 : SSL_OP_NO_TICKET));
    // Partial writes: the connection writes what the socket takes and keeps the rest in
    // its own buffer. Released buffers: an idle connection holds no 34 KiB of them.
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(
            ctx, config.ciphers.empty() ? kDefaultCiphers : config.ciphers.c_str()) != 1) {
      error = "no usable TLS 1.2 cipher in '" + config.ciphers + "'";
      return nullptr;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.certificate.c_str()) != 1) {
      error = cert.certificate + ": " + lastError();
      return nullptr;
    }
    // The key file's content is never part of a message.
    if (SSL_CTX_use_PrivateKey_file(ctx, cert.private_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      error = cert.private_key + ": not a private key for " + cert.certificate;
      return nullptr;
    }
    // One scope for all of a listener's contexts: SNI switching keeps resumption.
    SSL_CTX_set_session_id_context(ctx, out->scope_, sizeof out->scope_);
    SSL_CTX_set_app_data(ctx, out->scope_);
    if (config.session_tickets) {
      SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &onTicketKey);
      // Stateless tickets only: no session cache shared by the workers under a lock.
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    if (!config.client_ca.empty()) {
      if (SSL_CTX_load_verify_locations(ctx, config.client_ca.c_str(), nullptr) != 1) {
        error = config.client_ca + ": " + lastError();
        return nullptr;
      }
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.client_ca.c_str());
      if (names != nullptr) SSL_CTX_set_client_CA_list(ctx, names);
      int mode = SSL_VERIFY_PEER;
      if (config.client_auth == config::ClientAuth::kRequire) {
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      }
      SSL_CTX_set_verify(ctx, mode, nullptr);
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, &ServerContext::onServerName);
    SSL_CTX_set_tlsext_servername_arg(ctx, out.get());
    SSL_CTX_set_alpn_select_cb(ctx, &ServerContext::onAlpn, out.get());
    if (i == 0 && !out->ocsp_.empty()) {
      SSL_CTX_set_tlsext_status_cb(ctx, &ServerContext::onStatus);
      SSL_CTX_set_tlsext_status_arg(ctx, out.get());
    }
    for (const std::string& name : cert.names) {
      std::string n = http::asciiLower(name);
      if (n.starts_with("*.")) {
        out->wildcard_.emplace_back(n.substr(2), i);
      } else {
        out->exact_.emplace_back(n, i);
      }
    }
  }
  if (out->contexts_.empty()) {
    error = "no certificate";
    return nullptr;
  }
  return out;
}

ServerContext::~ServerContext() {
  for (SSL_CTX* ctx : contexts_) SSL_CTX_free(ctx);
}

SSL* ServerContext::newSession(int fd) const {
  SSL* ssl = SSL_new(contexts_[0]);
  if (ssl == nullptr) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

SSL_CTX* ServerContext::forName(const std::string& name) const {
  for (const auto& [n, i] : exact_) {
    if (n == name) return contexts_[i];
  }
  // "*.example.com" covers one label: a.example.com, not example.com nor a.b.example.com.
  size_t dot = name.find('.');
  if (dot != std::string::npos && dot > 0) {
    std::string_view parent = std::string_view(name).substr(dot + 1);
    for (const auto& [n, i] : wildcard_) {
      if (n == parent) return contexts_[i];
    }
  }
  return nullptr;
}

int ServerContext::onServerName(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
  SSL_CTX* ctx = self->forName(http::asciiLower(name));
  if (ctx != nullptr && ctx != SSL_get_SSL_CTX(ssl)) {
    SSL_set_SSL_CTX(ssl, ctx);
    // SSL_set_SSL_CTX takes the certificate; the verification settings are the same in
    // every context of a listener, but are applied to the session explicitly all the
    // same (as nginx does).
    SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_callback(ctx));
  }
  // An unknown name gets the default certificate rather than an alert: clients then
  // report a name mismatch, which is clearer than a failed handshake.
  return SSL_TLSEXT_ERR_OK;
}

int ServerContext::onAlpn(SSL*, const unsigned char** out, unsigned char* outlen,
                          const unsigned char* in, unsigned int inlen, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen,
                            reinterpret_cast<const unsigned char*>(self->alpn_wire_.data()),
                            static_cast<unsigned int>(self->alpn_wire_.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // nothing in common: go on without ALPN (HTTP/1.1)
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

int ServerContext::onStatus(SSL* ssl, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  if (SSL_get_SSL_CTX(ssl) != self->contexts_[0]) return SSL_TLSEXT_ERR_NOACK;
  // OpenSSL frees the response it is given: hand it a copy.
  auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(self->ocsp_.size()));
  if (copy == nullptr) return SSL_TLSEXT_ERR_NOACK;
  std::memcpy(copy, self->ocsp_.data(), self->ocsp_.size());
  SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(self->ocsp_.size()));
  return SSL_TLSEXT_ERR_OK;
}

std::string ServerContext::clientSubject(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return {};
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return {};
  X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data != nullptr && len > 0 ? data : "", len > 0 ? static_cast<size_t>(len) : 0);
  BIO_free(bio);
  return out;
}

}  // namespace sluice::tls
