#include "filters/ip_filter/ip_match.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace sluice::ipmatch {
namespace {

constexpr size_t kMaxAddressText = 45;  // "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
constexpr uint64_t kMappedPrefix = 0xFFFFull << 32;

uint64_t loadBigEndian(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

void storeBigEndian(uint64_t v, unsigned char* p) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<unsigned char>(v);
    v >>= 8;
  }
}

}  // namespace

Ip128 prefixMask(int prefix) {
  Ip128 m;
  if (prefix <= 0) return m;
  if (prefix >= 128) return {~0ull, ~0ull};
  if (prefix >= 64) {
    m.hi = ~0ull;
    m.lo = prefix == 64 ? 0 : ~0ull << (128 - prefix);
  } else {
    m.hi = ~0ull << (64 - prefix);
  }
  return m;
}

bool parseIp(std::string_view text, Ip128& out) {
  if (text.empty() || text.size() > kMaxAddressText) return false;
  // inet_pton wants a C string; a NUL inside would silently cut the text short.
  char buf[kMaxAddressText + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (std::memchr(buf, '\0', text.size()) != nullptr) return false;
  if (text.find(':') == std::string_view::npos) {
    unsigned char v4[4];
    if (inet_pton(AF_INET, buf, v4) != 1) return false;
    out.hi = 0;
    out.lo = kMappedPrefix | (uint64_t{v4[0]} << 24) | (uint64_t{v4[1]} << 16) |
             (uint64_t{v4[2]} << 8) | v4[3];
    return true;
  }
  unsigned char v6[16];
  if (inet_pton(AF_INET6, buf, v6) != 1) return false;
  out.hi = loadBigEndian(v6);
  out.lo = loadBigEndian(v6 + 8);
  return true;
}

size_t formatIp(const Ip128& ip, char* buf) {
  if (ip.v4()) {
    unsigned char v4[4] = {
        static_cast<unsigned char>(ip.lo >> 24), static_cast<unsigned char>(ip.lo >> 16),
        static_cast<unsigned char>(ip.lo >> 8), static_cast<unsigned char>(ip.lo)};
    inet_ntop(AF_INET, v4, buf, INET_ADDRSTRLEN);
  } else {
    unsigned char v6[16];
    storeBigEndian(ip.hi, v6);
    storeBigEndian(ip.lo, v6 + 8);
    inet_ntop(AF_INET6, v6, buf, INET6_ADDRSTRLEN);
  }
  return std::strlen(buf);
}

bool parseCidr(std::string_view text, Cidr& out, std::string& error) {
  static constexpr std::string_view kHint =
      "expected an IP address or CIDR like 10.0.0.0/8, 127.0.0.1 or \"2001:db8::/32\"";
  size_t slash = text.find('/');
  std::string_view address = text.substr(0, slash);
  Ip128 ip;
  if (!parseIp(address, ip)) {
    error = std::string(kHint) + ", not '" + std::string(text) + "'";
    return false;
  }
  bool written_v4 = address.find(':') == std::string_view::npos;
  int max = written_v4 ? 32 : 128;
  int prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    bool ok =
        !digits.empty() && digits.size() <= 3 &&
        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    prefix = 0;
    for (char c : digits) prefix = prefix * 10 + (c - '0');
    if (!ok || prefix > max) {
      error = "the prefix length of '" + std::string(text) + "' must be a number from 0 to " +
              std::to_string(max);
      return false;
    }
  }
  int bits = written_v4 ? prefix + 96 : prefix;
  Ip128 mask = prefixMask(bits);
  if (ip.masked(mask) != ip) {
    char buf[INET6_ADDRSTRLEN];
    formatIp(ip.masked(mask), buf);
    error = "'" + std::string(text) + "' has bits set after its /" + std::to_string(prefix) +
            " prefix (did you mean " + buf + "/" + std::to_string(prefix) + "?)";
    return false;
  }
  out.network = ip;
  out.prefix = bits;
  // An IPv6 rule written inside ::ffff:0:0/96 names IPv4 clients, so it is one of theirs.
  out.v4 = written_v4 || (bits >= 96 && ip.v4());
  return true;
}

void CidrSet::insert(std::vector<Bucket>& buckets, const Cidr& cidr) {
  auto it = std::find_if(buckets.begin(), buckets.end(),
                         [&](const Bucket& b) { return b.prefix == cidr.prefix; });
  if (it == buckets.end()) {
    buckets.push_back(Bucket{cidr.prefix, prefixMask(cidr.prefix), {}});
    it = buckets.end() - 1;
  }
  auto pos = std::lower_bound(it->networks.begin(), it->networks.end(), cidr.network);
  if (pos == it->networks.end() || *pos != cidr.network) it->networks.insert(pos, cidr.network);
}

bool CidrSet::lookup(const std::vector<Bucket>& buckets, const Ip128& ip) {
  for (const Bucket& b : buckets) {
    if (std::binary_search(b.networks.begin(), b.networks.end(), ip.masked(b.mask))) return true;
  }
  return false;
}

void CidrSet::add(const Cidr& cidr) {
  insert(cidr.v4 ? v4_ : v6_, cidr);
  ++count_;
}

bool CidrSet::contains(const Ip128& ip) const { return lookup(ip.v4() ? v4_ : v6_, ip); }

}  // namespace sluice::ipmatch
