#include "gateway/function/sigv4.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace sluice::function::sigv4 {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr char kHexUpper[] = "0123456789ABCDEF";
constexpr size_t kBlock = 64;  // SHA-256 block size, the HMAC key size

// Fetched once per process: implicit fetches on every EVP_DigestInit_ex would take the
// provider store's lock each time. Never freed (reachable, so not a leak).
const EVP_MD* sha256Md() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

void toHex(const uint8_t* in, size_t n, char* out) {
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[in[i] >> 4];
    out[2 * i + 1] = kHex[in[i] & 0xf];
  }
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

bool isUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

bool lessIgnoringCase(std::string_view a, std::string_view b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    char x = lower(a[i]);
    char y = lower(b[i]);
    if (x != y) return static_cast<unsigned char>(x) < static_cast<unsigned char>(y);
  }
  return a.size() < b.size();
}

// Incremental SHA-256 on a reused context.
class Sha256 {
 public:
  explicit Sha256(EVP_MD_CTX* ctx) : ctx_(ctx) { EVP_DigestInit_ex(ctx_, sha256Md(), nullptr); }
  void update(const void* data, size_t len) {
    if (len > 0) EVP_DigestUpdate(ctx_, data, len);
  }
  void update(std::string_view s) { update(s.data(), s.size()); }
  void final(uint8_t out[32]) {
    unsigned int len = 32;
    EVP_DigestFinal_ex(ctx_, out, &len);
  }

 private:
  EVP_MD_CTX* ctx_;
};

// HMAC-SHA256 (RFC 2104) over the same reused context: no MAC object, no allocation.
class HmacSha256 {
 public:
  HmacSha256(EVP_MD_CTX* ctx, const void* key, size_t len) : ctx_(ctx) {
    std::memset(k0_, 0, sizeof k0_);
    if (len > kBlock) {
      Sha256 h(ctx_);
      h.update(key, len);
      h.final(k0_);
    } else {
      std::memcpy(k0_, key, len);
    }
    uint8_t pad[kBlock];
    for (size_t i = 0; i < kBlock; ++i) pad[i] = k0_[i] ^ 0x36;
    EVP_DigestInit_ex(ctx_, sha256Md(), nullptr);
    EVP_DigestUpdate(ctx_, pad, kBlock);
  }
  void update(std::string_view s) {
    if (!s.empty()) EVP_DigestUpdate(ctx_, s.data(), s.size());
  }
  void final(uint8_t out[32]) {
    uint8_t inner[32];
    unsigned int len = 32;
    EVP_DigestFinal_ex(ctx_, inner, &len);
    uint8_t pad[kBlock];
    for (size_t i = 0; i < kBlock; ++i) pad[i] = k0_[i] ^ 0x5c;
    EVP_DigestInit_ex(ctx_, sha256Md(), nullptr);
    EVP_DigestUpdate(ctx_, pad, kBlock);
    EVP_DigestUpdate(ctx_, inner, sizeof inner);
    EVP_DigestFinal_ex(ctx_, out, &len);
  }

 private:
  EVP_MD_CTX* ctx_;
  uint8_t k0_[kBlock];
};

void hmac(EVP_MD_CTX* ctx, const void* key, size_t len, std::string_view data, uint8_t out[32]) {
  HmacSha256 h(ctx, key, len);
  h.update(data);
  h.final(out);
}

void derive(EVP_MD_CTX* ctx, std::string_view secret, std::string_view date,
            std::string_view region, std::string_view service, uint8_t out[32]) {
  // "AWS4" + secret without a heap string: HMAC takes its key in one piece, so the
  // usual 40-byte secret goes through a stack buffer (longer ones are rare).
  uint8_t k[32];
  char small[128];
  std::string big;
  const char* key = small;
  size_t key_len = 4 + secret.size();
  if (key_len <= sizeof small) {
    std::memcpy(small, "AWS4", 4);
    std::memcpy(small + 4, secret.data(), secret.size());
  } else {
    big.reserve(key_len);
    big.append("AWS4").append(secret);
    key = big.data();
  }
  hmac(ctx, key, key_len, date, k);
  hmac(ctx, k, 32, region, k);
  hmac(ctx, k, 32, service, k);
  hmac(ctx, k, 32, "aws4_request", out);
  if (key == small) OPENSSL_cleanse(small, key_len);
}

// The canonical request goes to a string (for tests) or straight into a hash (signing).
struct StringSink {
  std::string& s;
  void put(std::string_view v) { s.append(v); }
};

// Buffers the small pieces (":" and "\n" and short names) so the digest sees few updates.
class HashSink {
 public:
  explicit HashSink(EVP_MD_CTX* ctx) : hash_(ctx) {}
  void put(std::string_view v) {
    if (v.empty()) return;
    if (v.size() > sizeof buf_ - used_) {
      flush();
      if (v.size() > sizeof buf_) {
        hash_.update(v);
        return;
      }
    }
    std::memcpy(buf_ + used_, v.data(), v.size());
    used_ += v.size();
  }
  void final(uint8_t out[32]) {
    flush();
    hash_.final(out);
  }

 private:
  void flush() {
    hash_.update(buf_, used_);
    used_ = 0;
  }
  Sha256 hash_;
  char buf_[512];
  size_t used_ = 0;
};

template <typename Sink>
void putLower(Sink& sink, std::string_view s) {
  char buf[64];
  while (!s.empty()) {
    size_t n = std::min(s.size(), sizeof buf);
    for (size_t i = 0; i < n; ++i) buf[i] = lower(s[i]);
    sink.put(std::string_view(buf, n));
    s.remove_prefix(n);
  }
}

// Trimmed, with every run of spaces and tabs as one space.
template <typename Sink>
void putHeaderValue(Sink& sink, std::string_view v) {
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!v.empty() && blank(v.front())) v.remove_prefix(1);
  while (!v.empty() && blank(v.back())) v.remove_suffix(1);
  size_t start = 0;
  for (size_t i = 0; i < v.size();) {
    if (!blank(v[i])) {
      ++i;
      continue;
    }
    sink.put(v.substr(start, i - start));
    sink.put(" ");
    while (i < v.size() && blank(v[i])) ++i;
    start = i;
  }
  sink.put(v.substr(start));
}

template <typename Sink>
void putUriEncoded(Sink& sink, std::string_view in, bool keep_slash) {
  size_t run = 0;  // start of the pending run of bytes that stay as they are
  for (size_t i = 0; i < in.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    if (isUnreserved(c) || (keep_slash && c == '/')) continue;
    sink.put(in.substr(run, i - run));
    char esc[3] = {'%', kHexUpper[c >> 4], kHexUpper[c & 0xf]};
    sink.put(std::string_view(esc, 3));
    run = i + 1;
  }
  sink.put(in.substr(run));
}

}  // namespace

void formatAmzDate(std::time_t t, char out[kAmzDateLength + 1]) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  auto two = [](char* p, int v) {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
  };
  int year = tm.tm_year + 1900;
  two(out, year / 100);
  two(out + 2, year % 100);
  two(out + 4, tm.tm_mon + 1);
  two(out + 6, tm.tm_mday);
  out[8] = 'T';
  two(out + 9, tm.tm_hour);
  two(out + 11, tm.tm_min);
  two(out + 13, tm.tm_sec);
  out[15] = 'Z';
  out[16] = '\0';
}

void deriveSigningKey(std::string_view secret, std::string_view date, std::string_view region,
                      std::string_view service, uint8_t out[32]) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  derive(ctx, secret, date, region, service, out);
  EVP_MD_CTX_free(ctx);
}

void sha256Hex(std::string_view data, char out[kSha256HexLength + 1]) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  uint8_t digest[32];
  Sha256 h(ctx);
  h.update(data);
  h.final(digest);
  EVP_MD_CTX_free(ctx);
  toHex(digest, 32, out);
  out[kSha256HexLength] = '\0';
}

void uriEncode(std::string_view in, bool keep_slash, std::string& out) {
  StringSink sink{out};
  putUriEncoded(sink, in, keep_slash);
}

Signer::Signer(std::string region, std::string service, Credentials credentials,
               bool double_encode_path)
    : region_(std::move(region)),
      service_(std::move(service)),
      credentials_(std::move(credentials)),
      double_encode_path_(double_encode_path),
      md_(EVP_MD_CTX_new()) {}

Signer::~Signer() {
  OPENSSL_cleanse(signing_key_, sizeof signing_key_);
  EVP_MD_CTX_free(md_);
}

void Signer::sortHeaders(const Request& request, std::string_view amz_date,
                         std::string_view payload_sha256_hex) {
  entries_.clear();
  entries_.push_back({"host", request.host});
  entries_.push_back({"x-amz-date", amz_date});
  if (!credentials_.session_token.empty()) {
    entries_.push_back({"x-amz-security-token", credentials_.session_token});
  }
  if (request.content_sha256_header) {
    entries_.push_back({"x-amz-content-sha256", payload_sha256_hex});
  }
  for (size_t i = 0; i < request.header_count; ++i) {
    entries_.push_back({request.headers[i].name, request.headers[i].value});
  }
  std::sort(entries_.begin(), entries_.end(),
            [](const Entry& a, const Entry& b) { return lessIgnoringCase(a.name, b.name); });
}

template <typename Sink>
void Signer::writeCanonical(Sink& sink, const Request& request, std::string_view amz_date,
                            std::string_view payload_sha256_hex) {
  sortHeaders(request, amz_date, payload_sha256_hex);
  sink.put(request.method);
  sink.put("\n");
  std::string_view path = request.path.empty() ? std::string_view("/") : request.path;
  if (double_encode_path_) {
    putUriEncoded(sink, path, true);
  } else {
    sink.put(path);
  }
  sink.put("\n");
  sink.put(request.query);
  sink.put("\n");
  for (const Entry& e : entries_) {
    putLower(sink, e.name);
    sink.put(":");
    putHeaderValue(sink, e.value);
    sink.put("\n");
  }
  sink.put("\n");
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (i > 0) sink.put(";");
    putLower(sink, entries_[i].name);
  }
  sink.put("\n");
  sink.put(payload_sha256_hex);
}

std::string Signer::canonicalRequest(const Request& request, std::string_view amz_date,
                                     std::string_view payload_sha256_hex) {
  std::string out;
  StringSink sink{out};
  writeCanonical(sink, request, amz_date, payload_sha256_hex);
  return out;
}

void Signer::sign(const Request& request, std::time_t now, Signature& out) {
  formatAmzDate(now, out.amz_date);
  std::string_view amz_date(out.amz_date, kAmzDateLength);
  std::string_view date = amz_date.substr(0, 8);

  uint8_t digest[32];
  {
    Sha256 h(md_);
    h.update(request.payload);
    h.final(digest);
  }
  toHex(digest, 32, out.payload_sha256);
  out.payload_sha256[kSha256HexLength] = '\0';
  std::string_view payload_hex(out.payload_sha256, kSha256HexLength);

  // The signing key only changes with the day.
  if (date != std::string_view(key_date_)) {
    derive(md_, credentials_.secret_access_key, date, region_, service_, signing_key_);
    std::memcpy(key_date_, date.data(), 8);
    key_date_[8] = '\0';
  }

  char canonical_hex[kSha256HexLength];
  {
    HashSink sink(md_);
    writeCanonical(sink, request, amz_date, payload_hex);
    sink.final(digest);
  }
  toHex(digest, 32, canonical_hex);

  HmacSha256 mac(md_, signing_key_, sizeof signing_key_);
  mac.update("AWS4-HMAC-SHA256\n");
  mac.update(amz_date);
  mac.update("\n");
  mac.update(date);
  mac.update("/");
  mac.update(region_);
  mac.update("/");
  mac.update(service_);
  mac.update("/aws4_request\n");
  mac.update(std::string_view(canonical_hex, sizeof canonical_hex));
  mac.final(digest);
  char signature[kSha256HexLength];
  toHex(digest, 32, signature);

  std::string& a = out.authorization;
  a.clear();
  a.append("AWS4-HMAC-SHA256 Credential=").append(credentials_.access_key_id).append("/");
  a.append(date).append("/").append(region_).append("/").append(service_);
  a.append("/aws4_request, SignedHeaders=");
  StringSink names{a};
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (i > 0) a.push_back(';');
    putLower(names, entries_[i].name);
  }
  a.append(", Signature=").append(signature, sizeof signature);
}

}  // namespace sluice::function::sigv4
