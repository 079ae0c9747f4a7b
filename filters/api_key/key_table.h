// The api_key filter's table of known keys, by the SHA-256 of the key: a presented key
// is hashed once and looked up here, so the time a lookup takes depends on the digest,
// never on how much of a guessed key was right; the final comparison is CRYPTO_memcmp.
// It never holds a key itself, only digests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::api_key {

constexpr size_t kDigestSize = 32;

// SHA-256 of `key` into `out` (kDigestSize bytes). Reuses a per-thread context.
void digest(std::string_view key, unsigned char* out);

// Open addressing over digests (their first bytes are already uniformly random).
// Built once, then read-only: shared by every worker without locks.
class KeyTable {
 public:
  // `digests` are kDigestSize raw bytes each, unique; the value of each is its index.
  explicit KeyTable(const std::vector<std::string>& digests);
  // The index given for `digest`, or -1.
  int find(const unsigned char* digest) const;
  size_t size() const { return digests_.size(); }

 private:
  std::vector<std::string> digests_;
  std::vector<int32_t> slots_;  // index into digests_, -1 = empty
  size_t mask_ = 0;
};

}  // namespace sluice::api_key
