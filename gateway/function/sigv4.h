// AWS Signature Version 4 for request headers (the Authorization header way, not
// presigned URLs). One Signer per credentials, region and service; it keeps the derived
// signing key of the current day and reuses its buffers, so that signing a request
// after the first costs a few hashes and no allocation. Not thread-safe: one per worker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

struct evp_md_ctx_st;

namespace sluice::function::sigv4 {

inline constexpr size_t kAmzDateLength = 16;  // "20150830T123600Z"
inline constexpr size_t kSha256HexLength = 64;

// A header to sign besides those the signer adds itself. Names may be in any case (they
// are signed lower-cased) and must be unique; values are signed trimmed, with runs of
// spaces collapsed, as SigV4 requires. The request must carry them with these values.
struct Header {
  std::string_view name;
  std::string_view value;
};

struct Request {
  std::string_view method;  // "POST"
  // The path exactly as on the request line (already percent-encoded), e.g.
  // "/2015-03-31/functions/arn%3Aaws%3Alambda%3A...%3Afn/invocations".
  std::string_view path;
  // The canonical query string: names and values URI-encoded, pairs sorted by name
  // ("Qualifier=prod"); "" when there is none. It must also be what is sent.
  std::string_view query;
  std::string_view host;  // the Host header's value ("lambda.us-east-1.amazonaws.com")
  const Header* headers = nullptr;
  size_t header_count = 0;
  std::string_view payload;
  // Also sign x-amz-content-sha256 (S3 wants it; most services do not need it).
  bool content_sha256_header = false;
};

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // "" = long-term credentials (no x-amz-security-token)
};

// What the request must carry besides the headers it already has. Reused across calls
// (authorization keeps its capacity).
struct Signature {
  std::string authorization;  // the Authorization header's value
  // X-Amz-Date (always signed) and X-Amz-Content-Sha256 (signed when asked for);
  // X-Amz-Security-Token is the session token itself, signed when there is one.
  char amz_date[kAmzDateLength + 1] = {};
  char payload_sha256[kSha256HexLength + 1] = {};
};

class Signer {
 public:
  // `double_encode_path`: the canonical URI is the wire path URI-encoded once more, as
  // every service but S3 expects (an ARN's "%3A" is signed as "%253A"); S3 signs the
  // wire path as it is.
  Signer(std::string region, std::string service, Credentials credentials,
         bool double_encode_path = true);
  ~Signer();
  Signer(const Signer&) = delete;
  Signer& operator=(const Signer&) = delete;

  const Credentials& credentials() const { return credentials_; }

  // Signs `request` as made at `now` (seconds since the epoch, UTC).
  void sign(const Request& request, std::time_t now, Signature& out);

  // The canonical request (task 1 of the SigV4 process), for tests and debugging; sign()
  // hashes the same bytes without building this string.
  std::string canonicalRequest(const Request& request, std::string_view amz_date,
                               std::string_view payload_sha256_hex);

 private:
  struct Entry {
    std::string_view name;
    std::string_view value;
  };
  template <typename Sink>
  void writeCanonical(Sink& sink, const Request& request, std::string_view amz_date,
                      std::string_view payload_sha256_hex);
  void sortHeaders(const Request& request, std::string_view amz_date,
                   std::string_view payload_sha256_hex);

  std::string region_;
  std::string service_;
  Credentials credentials_;
  bool double_encode_path_;
  evp_md_ctx_st* md_ = nullptr;  // EVP_MD_CTX, reused for every hash
  char key_date_[9] = {};        // the day signing_key_ was derived for ("" = none yet)
  uint8_t signing_key_[32] = {};
  std::vector<Entry> entries_;  // the signed headers, sorted; reused
};

// "YYYYMMDDTHHMMSSZ" and a NUL.
void formatAmzDate(std::time_t t, char out[kAmzDateLength + 1]);

// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")
// with `date` as "YYYYMMDD".
void deriveSigningKey(std::string_view secret, std::string_view date, std::string_view region,
                      std::string_view service, uint8_t out[32]);

// Lower-case hex of SHA-256(data), and a NUL.
void sha256Hex(std::string_view data, char out[kSha256HexLength + 1]);

// Appends `in` URI-encoded the SigV4 way: A-Z a-z 0-9 - _ . ~ stay, every other byte
// becomes %XX (upper-case hex); '/' stays too when `keep_slash`.
void uriEncode(std::string_view in, bool keep_slash, std::string& out);

}  // namespace sluice::function::sigv4
