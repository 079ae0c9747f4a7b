// Addresses and CIDR sets for ip_filter: an address is one 128-bit value (IPv4 in its
// IPv4-mapped IPv6 form), CIDRs are compiled at config load into sorted (network, mask)
// tables. Matching never allocates, never resolves names and never throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::ipmatch {

struct Ip128 {
  uint64_t hi = 0;
  uint64_t lo = 0;
  // IPv4, or IPv4-mapped IPv6 (::ffff:a.b.c.d): both are matched by IPv4 rules.
  bool v4() const { return hi == 0 && (lo >> 32) == 0xFFFF; }
  Ip128 masked(const Ip128& mask) const { return {hi & mask.hi, lo & mask.lo}; }
  friend bool operator==(const Ip128&, const Ip128&) = default;
  friend bool operator<(const Ip128& a, const Ip128& b) {
    return a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo;
  }
};

// The mask with the `prefix` (0-128) leading bits set.
Ip128 prefixMask(int prefix);

// A textual IPv4 ("10.1.2.3") or IPv6 ("2001:db8::1", "::ffff:10.1.2.3") address, as
// inet_pton reads it: no brackets, port, zone or surrounding spaces.
bool parseIp(std::string_view text, Ip128& out);

// The canonical text of an address (IPv4 and IPv4-mapped addresses as dotted quads);
// `buf` must hold 46 bytes. Returns the length written.
size_t formatIp(const Ip128& ip, char* buf);

struct Cidr {
  Ip128 network;    // host bits are zero
  int prefix = 0;   // in the 128-bit space: an IPv4 /8 is 104
  bool v4 = false;  // matches IPv4 (and IPv4-mapped) addresses only
};

// "10.0.0.0/8", "2001:db8::/32", "::ffff:10.0.0.0/104", or a bare address ("127.0.0.1"
// is a /32, "::1" a /128). Host bits set below the prefix are an error (a typo more often
// than not). On failure `error` says why.
bool parseCidr(std::string_view text, Cidr& out, std::string& error);

// A set of CIDRs. IPv4 rules match IPv4 and IPv4-mapped clients; IPv6 rules match the
// other IPv6 clients (so "::/0" is every IPv6 client, and 0.0.0.0/0 every IPv4 one).
class CidrSet {
 public:
  void add(const Cidr& cidr);
  bool contains(const Ip128& ip) const;
  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }

 private:
  // Every network of one prefix length, sorted: a lookup masks the address once per
  // prefix length in use and binary-searches, so big lists stay cheap.
  struct Bucket {
    int prefix = 0;
    Ip128 mask;
    std::vector<Ip128> networks;
  };
  static void insert(std::vector<Bucket>& buckets, const Cidr& cidr);
  static bool lookup(const std::vector<Bucket>& buckets, const Ip128& ip);
  std::vector<Bucket> v4_;
  std::vector<Bucket> v6_;
  size_t count_ = 0;
};

}  // namespace sluice::ipmatch
