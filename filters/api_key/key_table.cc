#include "filters/api_key/key_table.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>

namespace sluice::api_key {
namespace {

// Fetched once: EVP_sha256() would look the implementation up on every init.
struct Sha256 {
  Sha256() : md(EVP_MD_fetch(nullptr, "SHA256", nullptr)) {}
  EVP_MD* md;
};

struct ThreadContext {
  ThreadContext() : ctx(EVP_MD_CTX_new()) {}
  ~ThreadContext() { EVP_MD_CTX_free(ctx); }
  EVP_MD_CTX* ctx;
};

uint64_t slotOf(const unsigned char* digest) {
  uint64_t h = 0;
  std::memcpy(&h, digest, sizeof h);
  return h;
}

}  // namespace

void digest(std::string_view key, unsigned char* out) {
  static const Sha256* const sha = new Sha256();  // never freed: no exit-order trouble
  thread_local ThreadContext t;
  unsigned int n = 0;
  if (sha->md == nullptr || t.ctx == nullptr || !EVP_DigestInit_ex(t.ctx, sha->md, nullptr) ||
      !EVP_DigestUpdate(t.ctx, key.data(), key.size()) || !EVP_DigestFinal_ex(t.ctx, out, &n)) {
    // Cannot happen with a working libcrypto; a digest of all ones matches no key.
    std::memset(out, 0xFF, kDigestSize);
  }
}

KeyTable::KeyTable(const std::vector<std::string>& digests) : digests_(digests) {
  size_t capacity = 8;
  while (capacity < 2 * digests_.size()) capacity *= 2;
  slots_.assign(capacity, -1);
  mask_ = capacity - 1;
  for (size_t i = 0; i < digests_.size(); ++i) {
    if (digests_[i].size() != kDigestSize) continue;
    size_t slot = slotOf(reinterpret_cast<const unsigned char*>(digests_[i].data())) & mask_;
    while (slots_[slot] != -1) slot = (slot + 1) & mask_;
    slots_[slot] = static_cast<int32_t>(i);
  }
}

int KeyTable::find(const unsigned char* digest) const {
  for (size_t slot = slotOf(digest) & mask_;; slot = (slot + 1) & mask_) {
    int32_t index = slots_[slot];
    if (index < 0) return -1;
    if (CRYPTO_memcmp(digests_[index].data(), digest, kDigestSize) == 0) return index;
  }
}

}  // namespace sluice::api_key
