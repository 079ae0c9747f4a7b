// Listener TLS config (`tls:` on a listener): every key into ListenerTls, the defaults,
// and every error with the exact FILE:LINE:COL a user would see. The certificates, keys
// and OCSP responses are made here with OpenSSL's C API in a temporary directory (none
// is committed).
#include <gtest/gtest.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"

namespace sluice::config {
namespace {

using namespace std::chrono_literals;

template <typename... T>
std::vector<std::string> lines(T... items) {
  return {std::string(items)...};
}

// --- test PKI ---------------------------------------------------------------------------

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;

KeyPtr newKey() { return KeyPtr(EVP_EC_gen("P-256"), EVP_PKEY_free); }

void addExtension(X509* x, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  ASSERT_NE(ext, nullptr) << value;
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key`: self-signed, or signed by `issuer`. `cn` and `sans` (as in
// openssl.cnf: "DNS:a.example.com,IP:127.0.0.1") may be empty.
X509Ptr newCert(EVP_PKEY* key, const std::string& cn, const std::string& sans, bool ca = false,
                X509* issuer = nullptr, EVP_PKEY* issuer_key = nullptr) {
  static long serial = 1;
  X509Ptr x(X509_new(), X509_free);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 86400);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("sluice tests"), -1, -1, 0);
  if (!cn.empty()) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  }
  X509_set_issuer_name(x.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : x.get(), x.get(), nullptr, nullptr, 0);
  if (!sans.empty()) addExtension(x.get(), &ctx, NID_subject_alt_name, sans.c_str());
  if (ca) {
    addExtension(x.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
    addExtension(x.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  }
  EXPECT_GT(X509_sign(x.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()), 0);
  return x;
}

std::string bioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

std::string pem(X509* x) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  return bioText(bio);
}

std::string pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  return bioText(bio);
}

std::string encryptedPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  char pass[] = "passphrase";
  PEM_write_bio_PKCS8PrivateKey(bio, key, EVP_aes_256_cbc(), pass, sizeof(pass) - 1, nullptr,
                                nullptr);
  return bioText(bio);
}

// A (TRYLATER) OCSP response, DER-encoded: parseable, which is all the config checks.
std::string ocspDer() {
  OCSP_RESPONSE* response = OCSP_response_create(OCSP_RESPONSE_STATUS_TRYLATER, nullptr);
  unsigned char* der = nullptr;
  int n = i2d_OCSP_RESPONSE(response, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  OCSP_RESPONSE_free(response);
  return out;
}

// What a private key file would hold, to check that no message repeats it.
constexpr const char* kSecretKeyText =
    "-----BEGIN PRIVATE KEY-----\nU0VDUkVUS0VZQllURVM=\n-----END PRIVATE KEY-----\n";

// A fresh directory with the test PKI in it, removed at the end of the suite. `path` is
// canonical.
class Pki {
 public:
  Pki() {
    char tmpl[] = "/tmp/sluice-tls-config-XXXXXX";
    char* made = mkdtemp(tmpl);
    EXPECT_NE(made, nullptr);
    char resolved[PATH_MAX];
    path_ = made != nullptr && realpath(made, resolved) != nullptr ? resolved : tmpl;

    KeyPtr a = newKey();
    X509Ptr a_cert =
        newCert(a.get(), "a.example.com", "DNS:A.Example.com,DNS:www.a.example.com,IP:127.0.0.1");
    write("a.pem", pem(a_cert.get()));
    write("a-key.pem", pem(a.get()));
    write("a-combined.pem", pem(a_cert.get()) + pem(a.get()));
    write("a-key-encrypted.pem", encryptedPem(a.get()));

    KeyPtr wild = newKey();
    X509Ptr wild_cert = newCert(wild.get(), "", "DNS:*.example.net");
    write("wild.pem", pem(wild_cert.get()));
    write("wild-key.pem", pem(wild.get()));

    KeyPtr cn = newKey();
    X509Ptr cn_cert = newCert(cn.get(), "CN-Only.example.org", "");
    write("cn.pem", pem(cn_cert.get()));
    write("cn-key.pem", pem(cn.get()));

    // SANs without a DNS name: the CN is used.
    KeyPtr ip = newKey();
    X509Ptr ip_cert = newCert(ip.get(), "ip.example.org", "IP:127.0.0.1");
    write("ip.pem", pem(ip_cert.get()));
    write("ip-key.pem", pem(ip.get()));

    KeyPtr noname = newKey();
    X509Ptr noname_cert = newCert(noname.get(), "", "");
    write("noname.pem", pem(noname_cert.get()));
    write("noname-key.pem", pem(noname.get()));

    // Shares www.a.example.com with a.pem.
    KeyPtr dup = newKey();
    X509Ptr dup_cert = newCert(dup.get(), "", "DNS:b.example.com,DNS:WWW.a.example.com");
    write("dup.pem", pem(dup_cert.get()));
    write("dup-key.pem", pem(dup.get()));
    KeyPtr dup2 = newKey();
    X509Ptr dup2_cert = newCert(dup2.get(), "", "DNS:a.example.com,DNS:www.a.example.com");
    write("dup2.pem", pem(dup2_cert.get()));
    write("dup2-key.pem", pem(dup2.get()));

    KeyPtr ca = newKey();
    X509Ptr ca_cert = newCert(ca.get(), "Sluice Test CA", "", true);
    write("ca.pem", pem(ca_cert.get()));
    KeyPtr leaf = newKey();
    X509Ptr leaf_cert =
        newCert(leaf.get(), "leaf", "DNS:leaf.example.com", false, ca_cert.get(), ca.get());
    write("leaf-chain.pem", pem(leaf_cert.get()) + pem(ca_cert.get()));
    write("leaf-chain-reversed.pem", pem(ca_cert.get()) + pem(leaf_cert.get()));
    write("leaf-key.pem", pem(leaf.get()));
    write("ca-key.pem", pem(ca.get()));

    KeyPtr other = newKey();
    write("other-key.pem", pem(other.get()));

    write("ocsp.der", ocspDer());
    write("empty.der", "");
    write("bad.der", "not DER at all");
    write("ocsp-trailing.der", ocspDer() + "x");
    write("garbage.pem", "hello\n");
    write("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    write("a-then-broken.pem",
          pem(a_cert.get()) + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    write("secret-key.pem", kSecretKeyText);
    std::filesystem::create_directories(path_ + "/certs.d");
    std::filesystem::create_directories(path_ + "/sub");
    EXPECT_EQ(mkfifo((path_ + "/fifo.pem").c_str(), 0600), 0);
  }
  ~Pki() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  Pki(const Pki&) = delete;
  Pki& operator=(const Pki&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  void write(const std::string& name, const std::string& content) const {
    std::ofstream(file(name), std::ios::binary) << content;
  }

 private:
  std::string path_;
};

// The listener around a `tls:` block: `tls:` is at 4:5 and the block's first key at 5:7.
constexpr const char* kHead = R"(listeners:
  - name: public
    address: 127.0.0.1:8443
    tls:
)";
constexpr const char* kTail = R"(routes: []
)";

class TlsConfig : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new Pki(); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  // Loads `yaml` from a file in the PKI directory, so that relative names are theirs.
  static LoadResult load(const std::string& yaml) {
    std::string file = pki_->file("sluice.yaml");
    std::ofstream(file, std::ios::binary) << yaml;
    return loadFile(file);
  }
  static LoadResult loadTls(const std::string& block) {
    return load(std::string(kHead) + block + kTail);
  }
  static std::shared_ptr<const Config> tlsOk(const std::string& block) {
    LoadResult result = loadTls(block);
    for (const Error& e : result.errors) ADD_FAILURE() << e.str();
    return result.config;
  }
  static const ListenerTls& tlsOf(const std::shared_ptr<const Config>& config) {
    static const ListenerTls kNone;
    return config != nullptr && !config->listeners.empty() ? config->listeners[0].tls : kNone;
  }
  // Every error, with the directory written DIR.
  static std::vector<std::string> errorsOf(const std::string& block) {
    LoadResult result = loadTls(block);
    std::vector<std::string> out;
    for (const Error& e : result.errors) {
      std::string text = e.str();
      for (size_t at; (at = text.find(pki_->path())) != std::string::npos;) {
        text.replace(at, pki_->path().size(), "DIR");
      }
      out.push_back(text);
    }
    EXPECT_EQ(result.config == nullptr, !out.empty());
    return out;
  }

  static Pki* pki_;
};

Pki* TlsConfig::pki_ = nullptr;

// --- valid configs -----------------------------------------------------------------------

TEST_F(TlsConfig, NoTlsMeansPlainHttp) {
  LoadResult result =
      load(std::string(kHead).substr(0, std::string(kHead).find("    tls:")) + kTail);
  ASSERT_NE(result.config, nullptr);
  EXPECT_FALSE(result.config->listeners[0].tls.enabled);
  EXPECT_TRUE(result.config->listeners[0].tls.certificates.empty());
}

TEST_F(TlsConfig, Defaults) {
  auto config = tlsOk(R"(      certificate: a.pem
      private_key: a-key.pem
)");
  ASSERT_NE(config, nullptr);
  const ListenerTls& tls = tlsOf(config);
  EXPECT_TRUE(tls.enabled);
  EXPECT_EQ(tls.mark.line, 4);
  EXPECT_EQ(tls.mark.column, 5);
  ASSERT_EQ(tls.certificates.size(), 1u);
  EXPECT_EQ(tls.certificates[0].certificate, pki_->file("a.pem"));
  EXPECT_EQ(tls.certificates[0].private_key, pki_->file("a-key.pem"));
  // SAN DNS entries lower-cased, IP entries ignored, the CN not added.
  EXPECT_EQ(tls.certificates[0].names,
            (std::vector<std::string>{"a.example.com", "www.a.example.com"}));
  EXPECT_EQ(tls.certificates[0].mark.line, 5);
  EXPECT_EQ(tls.certificates[0].mark.column, 20);
  EXPECT_EQ(tls.min_version, 0x0303);
  EXPECT_EQ(tls.ciphers, "");
  EXPECT_EQ(tls.alpn, std::vector<std::string>{"http/1.1"});
  EXPECT_EQ(tls.client_ca, "");
  EXPECT_EQ(tls.client_auth, ClientAuth::kNone);
  EXPECT_TRUE(tls.session_tickets);
  EXPECT_EQ(tls.handshake_timeout, 10s);
  EXPECT_EQ(tls.ocsp_staple, "");
}

TEST_F(TlsConfig, EveryKey) {
  auto config = tlsOk(R"(      certificate: a.pem
      private_key: a-key.pem
      certificates:
        - {certificate: wild.pem, private_key: wild-key.pem}
        - certificate: leaf-chain.pem
          private_key: leaf-key.pem
        - {certificate: cn.pem, private_key: cn-key.pem}
        - {certificate: ip.pem, private_key: ip-key.pem}
      min_version: 1.3
      ciphers: ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:-RC4:+AES256:@STRENGTH
      alpn: [http/1.1]
      client_ca: ca.pem
      client_auth: optional
      session_tickets: false
      handshake_timeout: 2500ms
      ocsp_staple: ocsp.der
)");
  ASSERT_NE(config, nullptr);
  const ListenerTls& tls = tlsOf(config);
  ASSERT_EQ(tls.certificates.size(), 5u);
  EXPECT_EQ(tls.certificates[1].certificate, pki_->file("wild.pem"));
  EXPECT_EQ(tls.certificates[1].private_key, pki_->file("wild-key.pem"));
  EXPECT_EQ(tls.certificates[1].names, std::vector<std::string>{"*.example.net"});
  EXPECT_EQ(tls.certificates[1].mark.line, 8);
  EXPECT_EQ(tls.certificates[1].mark.column, 25);
  // A chain: the names are the leaf's.
  EXPECT_EQ(tls.certificates[2].certificate, pki_->file("leaf-chain.pem"));
  EXPECT_EQ(tls.certificates[2].names, std::vector<std::string>{"leaf.example.com"});
  EXPECT_EQ(tls.certificates[2].mark.line, 9);
  // No subjectAltName, or one without DNS names: the CN, lower-cased.
  EXPECT_EQ(tls.certificates[3].names, std::vector<std::string>{"cn-only.example.org"});
  EXPECT_EQ(tls.certificates[4].names, std::vector<std::string>{"ip.example.org"});
  EXPECT_EQ(tls.min_version, 0x0304);
  EXPECT_EQ(tls.ciphers, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:-RC4:+AES256:@STRENGTH");
  EXPECT_EQ(tls.alpn, std::vector<std::string>{"http/1.1"});
  EXPECT_EQ(tls.client_ca, pki_->file("ca.pem"));
  EXPECT_EQ(tls.client_auth, ClientAuth::kOptional);
  EXPECT_FALSE(tls.session_tickets);
  EXPECT_EQ(tls.handshake_timeout, 2500ms);
  EXPECT_EQ(tls.ocsp_staple, pki_->file("ocsp.der"));
}

TEST_F(TlsConfig, MinVersionQuotedOrNot) {
  EXPECT_EQ(tlsOf(tlsOk("      {certificate: a.pem, private_key: a-key.pem, min_version: "
                        "\"1.2\"}\n"))
                .min_version,
            0x0303);
  EXPECT_EQ(tlsOf(tlsOk("      {certificate: a.pem, private_key: a-key.pem, min_version: "
                        "'1.3'}\n"))
                .min_version,
            0x0304);
  EXPECT_EQ(tlsOf(tlsOk("      {certificate: a.pem, private_key: a-key.pem, min_version: 1.2}\n"))
                .min_version,
            0x0303);
}

TEST_F(TlsConfig, ClientCaAloneRequiresClientCertificates) {
  auto config = tlsOk(R"(      certificate: a.pem
      private_key: a-key.pem
      client_ca: ca.pem
)");
  EXPECT_EQ(tlsOf(config).client_auth, ClientAuth::kRequire);
  EXPECT_EQ(tlsOf(config).client_ca, pki_->file("ca.pem"));
  config = tlsOk(R"(      certificate: a.pem
      private_key: a-key.pem
      client_ca: leaf-chain.pem
      client_auth: require
)");
  EXPECT_EQ(tlsOf(config).client_auth, ClientAuth::kRequire);
}

// A chain file holds the key too (one file for both), paths are normalised, and an
// absolute path is taken as it is.
TEST_F(TlsConfig, PathsAndCombinedFiles) {
  auto config = tlsOk(
      "      certificate: sub/../a-combined.pem\n"
      "      private_key: ./a-combined.pem\n"
      "      certificates:\n"
      "        - {certificate: " +
      pki_->file("wild.pem") + ", private_key: " + pki_->file("wild-key.pem") + "}\n");
  const ListenerTls& tls = tlsOf(config);
  ASSERT_EQ(tls.certificates.size(), 2u);
  EXPECT_EQ(tls.certificates[0].certificate, pki_->file("a-combined.pem"));
  EXPECT_EQ(tls.certificates[0].private_key, pki_->file("a-combined.pem"));
  EXPECT_EQ(tls.certificates[0].names,
            (std::vector<std::string>{"a.example.com", "www.a.example.com"}));
  EXPECT_EQ(tls.certificates[1].certificate, pki_->file("wild.pem"));
}

TEST_F(TlsConfig, EnvironmentInPaths) {
  setenv("SLUICE_TLS_TEST_DIR", pki_->path().c_str(), 1);
  auto config = tlsOk(R"(      certificate: ${SLUICE_TLS_TEST_DIR}/a.pem
      private_key: "${SLUICE_TLS_TEST_DIR}/a-key.pem"
)");
  unsetenv("SLUICE_TLS_TEST_DIR");
  EXPECT_EQ(tlsOf(config).certificates.at(0).certificate, pki_->file("a.pem"));
}

// The default certificate needs no name (it answers whatever SNI does not match).
TEST_F(TlsConfig, DefaultCertificateWithoutNames) {
  auto config = tlsOk(R"(      certificate: noname.pem
      private_key: noname-key.pem
      certificates: []
)");
  ASSERT_EQ(tlsOf(config).certificates.size(), 1u);
  EXPECT_TRUE(tlsOf(config).certificates[0].names.empty());
}

TEST_F(TlsConfig, Summary) {
  auto config = tlsOk(R"(      certificate: a.pem
      private_key: a-key.pem
      certificates:
        - {certificate: wild.pem, private_key: wild-key.pem}
)");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(summary(*config), "config OK: " + pki_->file("sluice.yaml") +
                                  "\nworkers: auto\n"
                                  "listener public on 127.0.0.1:8443 (tls: 2 certificates, "
                                  "names a.example.com, www.a.example.com, *.example.net)\n");
  config = tlsOk("      {certificate: noname.pem, private_key: noname-key.pem}\n");
  ASSERT_NE(config, nullptr);
  EXPECT_NE(summary(*config).find("listener public on 127.0.0.1:8443 (tls: 1 certificate, no "
                                  "names)\n"),
            std::string::npos)
      << summary(*config);
}

// --- errors ------------------------------------------------------------------------------

TEST_F(TlsConfig, NotAMapAndRequiredKeys) {
  EXPECT_EQ(errorsOf("      [a.pem]\n"), lines("DIR/sluice.yaml:5:7: expected a map"));
  EXPECT_EQ(errorsOf(""), lines("DIR/sluice.yaml:4:5: expected a map"));
  EXPECT_EQ(errorsOf("      {}\n"),
            lines("DIR/sluice.yaml:5:7: missing required key 'certificate'",
                  "DIR/sluice.yaml:5:7: missing required key 'private_key'"));
  EXPECT_EQ(errorsOf("      {certificate: a.pem}\n"),
            lines("DIR/sluice.yaml:5:7: missing required key 'private_key'"));
}

TEST_F(TlsConfig, UnknownKeyWithHint) {
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: a-key.pem
      cipher: HIGH
)"),
            lines("DIR/sluice.yaml:7:7: unknown key 'cipher' (did you mean 'ciphers'?); allowed "
                  "keys: certificate, private_key, certificates, min_version, ciphers, alpn, "
                  "client_ca, client_auth, session_tickets, handshake_timeout, ocsp_staple"));
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: a-key.pem
      certificates:
        - {certificate: wild.pem, key: wild-key.pem}
)"),
            lines("DIR/sluice.yaml:8:11: missing required key 'private_key'",
                  "DIR/sluice.yaml:8:35: unknown key 'key'; allowed keys: certificate, "
                  "private_key"));
}

TEST_F(TlsConfig, UnreadableFiles) {
  EXPECT_EQ(errorsOf(R"(      certificate: missing.pem
      private_key: certs.d
)"),
            lines("DIR/sluice.yaml:5:20: cannot read certificate file 'missing.pem' "
                  "(DIR/missing.pem): No such file or directory",
                  "DIR/sluice.yaml:6:20: private key file 'certs.d' is a directory"));
  EXPECT_EQ(errorsOf(R"(      certificate: fifo.pem
      private_key: nested/none.pem
)"),
            lines("DIR/sluice.yaml:5:20: certificate file 'fifo.pem' is not a regular file",
                  "DIR/sluice.yaml:6:20: cannot read private key file 'nested/none.pem' "
                  "(DIR/nested/none.pem): No such file or directory"));
  // An absolute name is not repeated.
  std::vector<std::string> errors =
      errorsOf("      certificate: " + pki_->file("none.pem") + "\n      private_key: a-key.pem\n");
  EXPECT_EQ(errors, lines("DIR/sluice.yaml:5:20: cannot read certificate file 'DIR/none.pem': "
                          "No such file or directory"));
  EXPECT_EQ(errorsOf(R"(      certificate: ""
      private_key: [a-key.pem]
)"),
            lines("DIR/sluice.yaml:5:20: expected a file name",
                  "DIR/sluice.yaml:6:20: expected a file name"));
}

TEST_F(TlsConfig, NotACertificate) {
  EXPECT_EQ(errorsOf(R"(      certificate: garbage.pem
      private_key: a-key.pem
      certificates:
        - {certificate: a-key.pem, private_key: a-key.pem}
        - {certificate: broken.pem, private_key: a-key.pem}
        - {certificate: a-then-broken.pem, private_key: a-key.pem}
)"),
            lines("DIR/sluice.yaml:5:20: certificate file 'garbage.pem' holds no PEM certificate",
                  "DIR/sluice.yaml:8:25: certificate file 'a-key.pem' holds no PEM certificate",
                  "DIR/sluice.yaml:9:25: certificate file 'broken.pem' holds an invalid PEM "
                  "certificate",
                  "DIR/sluice.yaml:10:25: certificate file 'a-then-broken.pem' holds an invalid "
                  "PEM certificate"));
}

TEST_F(TlsConfig, NotAKeyAndSecretsStaySecret) {
  std::vector<std::string> errors = errorsOf(R"(      certificate: a.pem
      private_key: a.pem
      certificates:
        - {certificate: wild.pem, private_key: secret-key.pem}
        - {certificate: cn.pem, private_key: a-key-encrypted.pem}
)");
  EXPECT_EQ(errors,
            lines("DIR/sluice.yaml:6:20: private key file 'a.pem' holds no PEM private key",
                  "DIR/sluice.yaml:8:48: private key file 'secret-key.pem' holds no PEM "
                  "private key",
                  "DIR/sluice.yaml:9:46: private key file 'a-key-encrypted.pem' is encrypted "
                  "(sluice needs the key unencrypted)"));
  for (const std::string& e : errors) {
    EXPECT_EQ(e.find("U0VDUkVU"), std::string::npos) << e;
    EXPECT_EQ(e.find("BEGIN"), std::string::npos) << e;
  }
}

TEST_F(TlsConfig, KeyDoesNotMatchCertificate) {
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: other-key.pem
      certificates:
        - {certificate: wild.pem, private_key: a-key.pem}
        - {certificate: leaf-chain-reversed.pem, private_key: leaf-key.pem}
        - {certificate: leaf-chain.pem, private_key: ca-key.pem}
)"),
            lines("DIR/sluice.yaml:6:20: private key 'other-key.pem' does not match certificate "
                  "'a.pem'",
                  "DIR/sluice.yaml:8:48: private key 'a-key.pem' does not match certificate "
                  "'wild.pem'",
                  "DIR/sluice.yaml:9:63: private key 'leaf-key.pem' does not match certificate "
                  "'leaf-chain-reversed.pem' (it matches certificate 2 of the file: the "
                  "server's own certificate must come first)",
                  "DIR/sluice.yaml:10:54: private key 'ca-key.pem' does not match certificate "
                  "'leaf-chain.pem' (it matches certificate 2 of the file: the server's own "
                  "certificate must come first)"));
}

TEST_F(TlsConfig, NamesServedTwice) {
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: a-key.pem
      certificates:
        - {certificate: dup.pem, private_key: dup-key.pem}
        - {certificate: dup2.pem, private_key: dup2-key.pem}
        - {certificate: wild.pem, private_key: wild-key.pem}
        - {certificate: ./wild.pem, private_key: wild-key.pem}
        - {certificate: noname.pem, private_key: noname-key.pem}
)"),
            lines("DIR/sluice.yaml:8:25: name 'www.a.example.com' is served by both 'a.pem' and "
                  "'dup.pem'",
                  "DIR/sluice.yaml:9:25: names 'a.example.com', 'www.a.example.com' are served "
                  "by both 'a.pem' and 'dup2.pem'",
                  "DIR/sluice.yaml:9:25: name 'www.a.example.com' is served by both 'dup.pem' "
                  "and 'dup2.pem'",
                  "DIR/sluice.yaml:11:25: certificate './wild.pem' is listed twice (first at "
                  "line 10)",
                  "DIR/sluice.yaml:12:25: certificate 'noname.pem' names no host (no "
                  "subjectAltName DNS entry, no CN): SNI would never choose it"));
}

TEST_F(TlsConfig, CertificatesList) {
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: a-key.pem
      certificates: wild.pem
)"),
            lines("DIR/sluice.yaml:7:21: expected a list"));
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: a-key.pem
      certificates:
        - wild.pem
        -
        - {private_key: wild-key.pem}
)"),
            lines("DIR/sluice.yaml:8:9: item 2 of the list is empty",
                  "DIR/sluice.yaml:8:11: expected a map",
                  "DIR/sluice.yaml:10:11: missing required key 'certificate'"));
}

TEST_F(TlsConfig, MinVersion) {
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: a-key.pem
      min_version: 1.1
      certificates:
        - {certificate: wild.pem, private_key: wild-key.pem}
)"),
            lines("DIR/sluice.yaml:7:20: expected \"1.2\" or \"1.3\""));
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: a-key.pem
      min_version: [1.2]
)"),
            lines("DIR/sluice.yaml:7:20: expected \"1.2\" or \"1.3\""));
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: a-key.pem
      min_version: TLSv1.2
)"),
            lines("DIR/sluice.yaml:7:20: expected \"1.2\" or \"1.3\""));
}

TEST_F(TlsConfig, Ciphers) {
  auto ciphers = [](const std::string& value) {
    return errorsOf(
        "      certificate: a.pem\n      private_key: a-key.pem\n      ciphers: " + value + "\n");
  };
  EXPECT_EQ(ciphers("NOPE"), lines("DIR/sluice.yaml:7:16: no cipher matches 'NOPE'"));
  // OpenSSL alone would take this list and ignore the misspelt entry.
  EXPECT_EQ(ciphers("ECDHE+AESGCM:ECDHE+CHACHA2O"),
            lines("DIR/sluice.yaml:7:16: no cipher matches 'ECDHE+CHACHA2O'"));
  EXPECT_EQ(ciphers("\"ECDHE+AESGCM AES256-SHA, +NOPE\""),
            lines("DIR/sluice.yaml:7:16: no cipher matches 'NOPE'"));
  EXPECT_EQ(ciphers("AESGCM:!AESGCM"),
            lines("DIR/sluice.yaml:7:16: no cipher matches 'AESGCM:!AESGCM'"));
  EXPECT_EQ(ciphers("TLS_AES_128_GCM_SHA256"),
            lines("DIR/sluice.yaml:7:16: no cipher matches 'TLS_AES_128_GCM_SHA256' (TLS 1.3 "
                  "cipher suites are not set here: 'ciphers' is for TLS 1.2)"));
  EXPECT_EQ(ciphers("\"\""), lines("DIR/sluice.yaml:7:16: expected a cipher list like "
                                   "ECDHE+AESGCM:ECDHE+CHACHA20"));
  EXPECT_EQ(ciphers("[HIGH]"), lines("DIR/sluice.yaml:7:16: expected a cipher list like "
                                     "ECDHE+AESGCM:ECDHE+CHACHA20"));
}

TEST_F(TlsConfig, Alpn) {
  auto alpn = [](const std::string& value) {
    return errorsOf("      certificate: a.pem\n      private_key: a-key.pem\n      alpn: " + value +
                    "\n");
  };
  EXPECT_EQ(alpn("[h2, http/1.1]"), lines());
  EXPECT_EQ(alpn("[http/1.1, spdy/3, HTTP/1.1]"),
            lines("DIR/sluice.yaml:7:24: unknown ALPN protocol 'spdy/3' (expected http/1.1 or "
                  "h2)",
                  "DIR/sluice.yaml:7:32: unknown ALPN protocol 'HTTP/1.1' (expected http/1.1 or "
                  "h2)"));
  EXPECT_EQ(alpn("[http/1.1, http/1.1]"),
            lines("DIR/sluice.yaml:7:24: duplicate ALPN protocol 'http/1.1'"));
  EXPECT_EQ(alpn("[]"), lines("DIR/sluice.yaml:7:13: expected at least one protocol"));
  EXPECT_EQ(alpn("http/1.1"), lines("DIR/sluice.yaml:7:13: expected a list"));
  EXPECT_EQ(alpn("[[http/1.1]]"), lines("DIR/sluice.yaml:7:14: expected a string"));
}

TEST_F(TlsConfig, ClientCertificates) {
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: a-key.pem
      client_auth: require
)"),
            lines("DIR/sluice.yaml:7:20: 'client_auth' needs 'client_ca' (the CA certificates "
                  "that client certificates are checked against)"));
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: a-key.pem
      client_ca: garbage.pem
      client_auth: always
)"),
            lines("DIR/sluice.yaml:7:18: client CA file 'garbage.pem' holds no PEM certificate",
                  "DIR/sluice.yaml:8:20: expected require or optional"));
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: a-key.pem
      client_ca: nope.pem
)"),
            lines("DIR/sluice.yaml:7:18: cannot read client CA file 'nope.pem' (DIR/nope.pem): "
                  "No such file or directory"));
}

TEST_F(TlsConfig, SessionTicketsAndHandshakeTimeout) {
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: a-key.pem
      session_tickets: yes
      handshake_timeout: 0s
)"),
            lines("DIR/sluice.yaml:7:24: expected true or false",
                  "DIR/sluice.yaml:8:26: must be greater than 0"));
  EXPECT_EQ(errorsOf(R"(      certificate: a.pem
      private_key: a-key.pem
      handshake_timeout: 5
)"),
            lines("DIR/sluice.yaml:7:26: expected a duration like 250ms, 3s, 10m, 2h (a bare "
                  "number has no unit)"));
}

TEST_F(TlsConfig, OcspStaple) {
  auto ocsp = [](const std::string& value) {
    return errorsOf("      certificate: a.pem\n      private_key: a-key.pem\n      ocsp_staple: " +
                    value + "\n");
  };
  EXPECT_EQ(ocsp("empty.der"), lines("DIR/sluice.yaml:7:20: OCSP response file 'empty.der' is "
                                     "empty"));
  EXPECT_EQ(ocsp("bad.der"), lines("DIR/sluice.yaml:7:20: OCSP response file 'bad.der' holds no "
                                   "DER OCSP response"));
  EXPECT_EQ(ocsp("ocsp-trailing.der"), lines("DIR/sluice.yaml:7:20: OCSP response file "
                                             "'ocsp-trailing.der' holds no DER OCSP response"));
  EXPECT_EQ(ocsp("missing.der"),
            lines("DIR/sluice.yaml:7:20: cannot read OCSP response file 'missing.der' "
                  "(DIR/missing.der): No such file or directory"));
  EXPECT_EQ(ocsp("certs.d"),
            lines("DIR/sluice.yaml:7:20: OCSP response file 'certs.d' is a directory"));
}

// Every problem of a `tls:` block at once, with the listener's other errors, in file order.
TEST_F(TlsConfig, AllErrorsAtOnce) {
  LoadResult result = load(R"(listeners:
  - name: public
    address: 127.0.0.1:8443
    idle_timeout: 0s
    tls:
      certificate: missing.pem
      private_key: other-key.pem
      min_version: "1.0"
      alpn: [h2]
      client_auth: optional
  - name: second
    address: 127.0.0.1:8444
    tls: {certificate: wild.pem, private_key: a-key.pem}
routes: []
)");
  std::vector<std::string> out;
  for (const Error& e : result.errors) {
    std::string text = e.str();
    for (size_t at; (at = text.find(pki_->path())) != std::string::npos;) {
      text.replace(at, pki_->path().size(), "DIR");
    }
    out.push_back(text);
  }
  EXPECT_EQ(result.config, nullptr);
  EXPECT_EQ(out, lines("DIR/sluice.yaml:4:19: must be greater than 0",
                       "DIR/sluice.yaml:6:20: cannot read certificate file 'missing.pem' "
                       "(DIR/missing.pem): No such file or directory",
                       "DIR/sluice.yaml:8:20: expected \"1.2\" or \"1.3\"",
                       "DIR/sluice.yaml:10:20: 'client_auth' needs 'client_ca' (the CA "
                       "certificates that client certificates are checked against)",
                       "DIR/sluice.yaml:13:47: private key 'a-key.pem' does not match "
                       "certificate 'wild.pem'"));
}

// loadString: relative names are taken from the working directory.
TEST_F(TlsConfig, LoadStringUsesTheWorkingDirectory) {
  char saved[PATH_MAX];
  ASSERT_NE(getcwd(saved, sizeof(saved)), nullptr);
  ASSERT_EQ(chdir(pki_->path().c_str()), 0);
  LoadResult result = loadString(
      std::string(kHead) + "      {certificate: a.pem, private_key: a-key.pem}\n" + kTail,
      "inline");
  EXPECT_EQ(chdir(saved), 0);
  ASSERT_NE(result.config, nullptr);
  EXPECT_EQ(result.config->listeners[0].tls.certificates[0].certificate, pki_->file("a.pem"));
}

}  // namespace
}  // namespace sluice::config
