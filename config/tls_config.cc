#include "config/tls_config.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>

#include "config/admin_config.h"
#include "gateway/http/message.h"

namespace sluice::config::detail {
namespace {

const Schema kTls{{"certificate", "private_key", "certificates", "min_version", "ciphers", "alpn",
                   "client_ca", "client_auth", "session_tickets", "handshake_timeout",
                   "ocsp_staple"}};
const Schema kCertificate{{"certificate", "private_key"}};

constexpr off_t kMaxFileSize = 16 << 20;

template <auto F>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    F(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using OcspPtr = std::unique_ptr<OCSP_RESPONSE, Deleter<OCSP_RESPONSE_free>>;

// A file's bytes, wiped when done with (it may hold a private key).
struct Bytes {
  std::string data;
  Bytes() = default;
  Bytes(const Bytes&) = delete;
  Bytes& operator=(const Bytes&) = delete;
  ~Bytes() {
    if (!data.empty()) OPENSSL_cleanse(data.data(), data.size());
  }
};

// A file named in the config: as written (for messages) and absolute (to open).
struct Path {
  std::string written;
  std::string full;
  Mark mark;
  // "'c.pem'", for messages.
  std::string quoted() const { return "'" + written + "'"; }
};

std::string absolutePath(const std::string& config_dir, const std::string& path) {
  // Not canonical: a symlink (certbot's live/ directory) is kept as a symlink, so that a
  // reload reads whatever it points to then.
  std::filesystem::path p(path);
  if (p.is_relative()) p = std::filesystem::path(config_dir) / p;
  std::error_code ec;
  std::filesystem::path full = std::filesystem::absolute(p, ec);
  return (ec ? p : full).lexically_normal().string();
}

std::optional<Path> readPath(Reader& reader, const Field& field, const std::string& config_dir) {
  if (!field.value.IsScalar()) {
    reader.error(field, "expected a file name");
    return std::nullopt;
  }
  std::optional<std::string> text = reader.string(field);
  if (!text) return std::nullopt;
  if (text->empty() || text->find('\0') != std::string::npos) {
    reader.error(field, "expected a file name");
    return std::nullopt;
  }
  return Path{*text, absolutePath(config_dir, *text), Reader::valueMark(field)};
}

// Reads a whole regular file into `out`; else reports why, with `kind` ("certificate
// file") naming the file in the message.
bool readFile(Reader& reader, const Path& path, std::string_view kind, Bytes& out) {
  std::string what = std::string(kind) + " " + path.quoted();
  // O_NONBLOCK: a FIFO must not hang the loader (it is refused below).
  int fd = open(path.full.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    std::string where = path.written == path.full ? "" : " (" + path.full + ")";
    reader.error(path.mark, "cannot read " + what + where + ": " + std::strerror(errno));
    return false;
  }
  struct stat st {};
  bool ok = false;
  if (fstat(fd, &st) != 0) {
    reader.error(path.mark, "cannot read " + what + ": " + std::strerror(errno));
  } else if (S_ISDIR(st.st_mode)) {
    reader.error(path.mark, what + " is a directory");
  } else if (!S_ISREG(st.st_mode)) {
    reader.error(path.mark, what + " is not a regular file");
  } else if (st.st_size > kMaxFileSize) {
    reader.error(path.mark, what + " is larger than 16 MiB");
  } else {
    out.data.resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    ok = true;
    while (done < out.data.size()) {
      ssize_t n = read(fd, out.data.data() + done, out.data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        reader.error(path.mark, "cannot read " + what + ": " + std::strerror(errno));
        ok = false;
        break;
      }
      if (n == 0) break;  // shrank while we read
      done += static_cast<size_t>(n);
    }
    out.data.resize(done);
  }
  close(fd);
  return ok;
}

// The PEM certificates of `bytes`, in file order. False (and `chain` possibly partly
// filled) when one is not valid; true with an empty chain when there is none.
bool parseCertificates(const Bytes& bytes, std::vector<X509Ptr>& chain) {
  BioPtr bio(BIO_new_mem_buf(bytes.data.data(), static_cast<int>(bytes.data.size())));
  if (!bio) return false;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) chain.emplace_back(x);
  // The loop ends at the end of the input ("no start line") or at a broken certificate.
  unsigned long err = ERR_peek_last_error();
  bool clean = ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  ERR_clear_error();
  return clean;
}

// Reads `path` and its PEM certificates; reports a file without any, or with a broken one.
bool loadCertificates(Reader& reader, const Path& path, std::string_view kind,
                      std::vector<X509Ptr>& chain) {
  Bytes bytes;
  if (!readFile(reader, path, kind, bytes)) return false;
  bool clean = parseCertificates(bytes, chain);
  std::string what = std::string(kind) + " " + path.quoted();
  if (!clean) {
    reader.error(path.mark, what + " holds an invalid PEM certificate");
    return false;
  }
  if (chain.empty()) {
    reader.error(path.mark, what + " holds no PEM certificate");
    return false;
  }
  return true;
}

// Called by OpenSSL when a key is encrypted: no passphrase (and no prompt on a terminal).
int noPassphrase(char*, int, int, void* asked) {
  *static_cast<bool*>(asked) = true;
  return -1;
}

// The first PEM private key of `path`. Messages never quote the file's content.
KeyPtr loadKey(Reader& reader, const Path& path) {
  Bytes bytes;
  if (!readFile(reader, path, "private key file", bytes)) return nullptr;
  BioPtr bio(BIO_new_mem_buf(bytes.data.data(), static_cast<int>(bytes.data.size())));
  bool asked = false;
  KeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassphrase, &asked) : nullptr);
  ERR_clear_error();
  if (!key) {
    reader.error(path.mark, "private key file " + path.quoted() +
                                (asked ? " is encrypted (sluice needs the key unencrypted)"
                                       : " holds no PEM private key"));
  }
  return key;
}

// The names a certificate serves: its subjectAltName DNS entries, else its subject CN.
std::vector<std::string> certificateNames(X509* x) {
  std::vector<std::string> names;
  auto add = [&names](const unsigned char* data, int length) {
    if (data == nullptr || length <= 0) return;
    std::string_view name(reinterpret_cast<const char*>(data), static_cast<size_t>(length));
    if (name.find('\0') != std::string_view::npos) return;
    std::string lower = http::asciiLower(name);
    if (std::find(names.begin(), names.end(), lower) == names.end()) names.push_back(lower);
  };
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
    if (name->type == GEN_DNS) {
      add(ASN1_STRING_get0_data(name->d.dNSName), ASN1_STRING_length(name->d.dNSName));
    }
  }
  GENERAL_NAMES_free(sans);
  if (names.empty()) {
    X509_NAME* subject = X509_get_subject_name(x);
    int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index >= 0) {
      ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
      unsigned char* utf8 = nullptr;
      int length = ASN1_STRING_to_UTF8(&utf8, cn);
      add(utf8, length);
      OPENSSL_free(utf8);
    }
  }
  ERR_clear_error();
  return names;
}

// One certificate and its key (`fields` of `map`): both files read and checked, the key
// matched to the certificate, the names taken from it. `written` is the certificate's
// file name as written. True when the certificate itself could be read.
bool readCertificate(Reader& reader, const Field& map, const Fields& fields,
                     const std::string& config_dir, TlsCertificate& out, std::string& written) {
  const Field* cert_field = reader.required(map, fields, "certificate");
  const Field* key_field = reader.required(map, fields, "private_key");
  std::optional<Path> cert_path;
  std::optional<Path> key_path;
  out.mark = Reader::valueMark(cert_field != nullptr ? *cert_field : map);
  if (cert_field != nullptr) cert_path = readPath(reader, *cert_field, config_dir);
  if (key_field != nullptr) key_path = readPath(reader, *key_field, config_dir);
  std::vector<X509Ptr> chain;
  if (cert_path) {
    written = cert_path->written;
    out.certificate = cert_path->full;
    if (loadCertificates(reader, *cert_path, "certificate file", chain)) {
      out.names = certificateNames(chain.front().get());
    } else {
      chain.clear();
    }
  }
  KeyPtr key;
  if (key_path) {
    out.private_key = key_path->full;
    key = loadKey(reader, *key_path);
  }
  if (!chain.empty() && key) {
    bool match = X509_check_private_key(chain.front().get(), key.get()) == 1;
    ERR_clear_error();
    if (!match) {
      std::string message = "private key " + key_path->quoted() + " does not match certificate " +
                            cert_path->quoted();
      // A chain in the wrong order: say so rather than leave the user to guess.
      for (size_t i = 1; i < chain.size(); ++i) {
        if (X509_check_private_key(chain[i].get(), key.get()) == 1) {
          message += " (it matches certificate " + std::to_string(i + 1) +
                     " of the file: the server's own certificate must come first)";
          break;
        }
      }
      ERR_clear_error();
      reader.error(key_path->mark, message);
    }
  }
  return !chain.empty();
}

// Two certificates may not serve one name: SNI could not choose between them.
void checkNames(Reader& reader, const std::vector<TlsCertificate>& certs,
                const std::vector<std::string>& written) {
  for (size_t j = 1; j < certs.size(); ++j) {
    for (size_t i = 0; i < j; ++i) {
      if (certs[i].certificate.empty() || certs[j].certificate.empty()) continue;
      if (certs[i].certificate == certs[j].certificate) {
        reader.error(certs[j].mark, "certificate '" + written[j] +
                                        "' is listed twice (first at line " +
                                        std::to_string(certs[i].mark.line) + ")");
        break;
      }
      std::vector<std::string> shared;
      for (const std::string& name : certs[j].names) {
        if (std::find(certs[i].names.begin(), certs[i].names.end(), name) != certs[i].names.end()) {
          shared.push_back("'" + name + "'");
        }
      }
      if (shared.empty()) continue;
      std::string list;
      for (const std::string& name : shared) list += (list.empty() ? "" : ", ") + name;
      reader.error(certs[j].mark, (shared.size() == 1 ? "name " : "names ") + list +
                                      (shared.size() == 1 ? " is" : " are") + " served by both '" +
                                      written[i] + "' and '" + written[j] + "'");
    }
  }
}

void readMinVersion(Reader& reader, const Field& field, int& out) {
  static const std::string kHint = "expected \"1.2\" or \"1.3\"";
  if (!field.value.IsScalar()) {
    reader.error(field, kHint);
    return;
  }
  // Unquoted, YAML reads 1.2 as a float; its text is what was written.
  std::optional<std::string> text = reader.string(field);
  if (!text) return;
  if (*text == "1.2") {
    out = TLS1_2_VERSION;
  } else if (*text == "1.3") {
    out = TLS1_3_VERSION;
  } else {
    reader.error(field, kHint);
  }
}

// A cipher list that OpenSSL takes, each cipher or family in it matching something (OpenSSL
// alone ignores a misspelt entry when another one matches).
void readCiphers(Reader& reader, const Field& field, std::string& out) {
  if (!field.value.IsScalar()) {
    reader.error(field, "expected a cipher list like ECDHE+AESGCM:ECDHE+CHACHA20");
    return;
  }
  std::optional<std::string> text = reader.string(field);
  if (!text) return;
  if (text->empty() || text->find('\0') != std::string::npos) {
    reader.error(field, "expected a cipher list like ECDHE+AESGCM:ECDHE+CHACHA20");
    return;
  }
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    ERR_clear_error();
    reader.error(field, "cannot check the cipher list: OpenSSL could not make a TLS context");
    return;
  }
  auto matches = [&ctx](const std::string& list) {
    bool ok = SSL_CTX_set_cipher_list(ctx.get(), list.c_str()) == 1;
    ERR_clear_error();
    return ok;
  };
  auto noMatch = [&reader, &field](const std::string& what) {
    std::string message = "no cipher matches '" + what + "'";
    if (what.starts_with("TLS_")) {
      message += " (TLS 1.3 cipher suites are not set here: 'ciphers' is for TLS 1.2)";
    }
    reader.error(field, message);
  };
  // Entries are separated by ':', ',' or spaces. Those that remove ciphers ('!', '-')
  // may match nothing; '@STRENGTH' and '@SECLEVEL=n' are commands.
  size_t start = 0;
  while (start <= text->size()) {
    size_t end = text->find_first_of(": ,", start);
    if (end == std::string::npos) end = text->size();
    std::string entry = text->substr(start, end - start);
    start = end + 1;
    if (entry.empty() || entry[0] == '!' || entry[0] == '-' || entry[0] == '@') continue;
    if (entry[0] == '+') entry.erase(0, 1);
    if (!entry.empty() && !matches(entry)) {
      noMatch(entry);
      return;
    }
  }
  if (!matches(*text)) {
    noMatch(*text);
    return;
  }
  out = *text;
}

void readAlpn(Reader& reader, const Field& field, std::vector<std::string>& out) {
  std::vector<Field> items;
  if (!reader.list(field, items)) return;
  if (field.value.size() == 0) {
    reader.error(field, "expected at least one protocol");
    return;
  }
  std::vector<std::string> protocols;
  bool ok = items.size() == field.value.size();
  for (const Field& item : items) {
    std::optional<std::string> name = reader.string(item);
    if (!name) {
      ok = false;
      continue;
    }
    if (std::find(protocols.begin(), protocols.end(), *name) != protocols.end()) {
      reader.error(item, "duplicate ALPN protocol '" + *name + "'");
      ok = false;
      continue;
    }
    protocols.push_back(*name);
    if (*name != "http/1.1" && *name != "h2") {
      reader.error(item, "unknown ALPN protocol '" + *name + "' (expected http/1.1 or h2)");
      ok = false;
    }
  }
  if (ok) out = std::move(protocols);
}

void readClientAuth(Reader& reader, const Field& field, ClientAuth& out) {
  if (!field.value.IsScalar()) {
    reader.error(field, "expected require or optional");
    return;
  }
  std::optional<std::string> text = reader.string(field);
  if (!text) return;
  if (*text == "require") {
    out = ClientAuth::kRequire;
  } else if (*text == "optional") {
    out = ClientAuth::kOptional;
  } else {
    reader.error(field, "expected require or optional");
  }
}

void readOcspStaple(Reader& reader, const Path& path, std::string& out) {
  Bytes bytes;
  if (!readFile(reader, path, "OCSP response file", bytes)) return;
  std::string what = "OCSP response file " + path.quoted();
  if (bytes.data.empty()) {
    reader.error(path.mark, what + " is empty");
    return;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data.data());
  const unsigned char* end = p + bytes.data.size();
  OcspPtr response(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(bytes.data.size())));
  ERR_clear_error();
  if (!response || p != end) {
    reader.error(path.mark, what + " holds no DER OCSP response");
    return;
  }
  out = path.full;
}

}  // namespace

void readListenerTls(Reader& reader, const Field& field, const std::string& config_dir,
                     ListenerTls& out) {
  out.mark = Reader::markOf(field.key);
  Fields fields;
  if (!reader.map(field, kTls, fields)) return;
  out.enabled = true;

  // The default certificate, then the others; file names as written, for messages.
  std::vector<std::string> written(1);
  out.certificates.emplace_back();
  readCertificate(reader, field, fields, config_dir, out.certificates[0], written[0]);
  if (const Field* f = fields.get("certificates")) {
    std::vector<Field> items;
    if (reader.list(*f, items)) {
      for (const Field& item : items) {
        Fields entry;
        if (!reader.map(item, kCertificate, entry)) continue;
        TlsCertificate cert;
        std::string name;
        if (readCertificate(reader, item, entry, config_dir, cert, name) && cert.names.empty()) {
          reader.error(cert.mark, "certificate '" + name +
                                      "' names no host (no subjectAltName DNS entry, no CN): "
                                      "SNI would never choose it");
        }
        out.certificates.push_back(std::move(cert));
        written.push_back(std::move(name));
      }
    }
  }
  checkNames(reader, out.certificates, written);

  if (const Field* f = fields.get("min_version")) readMinVersion(reader, *f, out.min_version);
  if (const Field* f = fields.get("ciphers")) readCiphers(reader, *f, out.ciphers);
  if (const Field* f = fields.get("alpn")) readAlpn(reader, *f, out.alpn);

  const Field* ca_field = fields.get("client_ca");
  if (ca_field != nullptr) {
    if (std::optional<Path> path = readPath(reader, *ca_field, config_dir)) {
      std::vector<X509Ptr> cas;
      if (loadCertificates(reader, *path, "client CA file", cas)) out.client_ca = path->full;
    }
    out.client_auth = ClientAuth::kRequire;
  }
  if (const Field* f = fields.get("client_auth")) {
    readClientAuth(reader, *f, out.client_auth);
    if (ca_field == nullptr) {
      reader.error(*f,
                   "'client_auth' needs 'client_ca' (the CA certificates that client "
                   "certificates are checked against)");
      out.client_auth = ClientAuth::kNone;
    }
  }

  if (const Field* f = fields.get("session_tickets")) readBool(reader, *f, out.session_tickets);
  if (const Field* f = fields.get("handshake_timeout")) {
    reader.duration(*f, /*allow_zero=*/false, out.handshake_timeout);
  }
  if (const Field* f = fields.get("ocsp_staple")) {
    if (std::optional<Path> path = readPath(reader, *f, config_dir)) {
      readOcspStaple(reader, *path, out.ocsp_staple);
    }
  }
}

}  // namespace sluice::config::detail
