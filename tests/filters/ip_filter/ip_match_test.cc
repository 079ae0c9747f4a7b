// CIDR parsing and matching for ip_filter (filters/ip_filter/ip_match.h).
#include "filters/ip_filter/ip_match.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

namespace sluice::ipmatch {
namespace {

Ip128 ip(const char* text) {
  Ip128 out;
  EXPECT_TRUE(parseIp(text, out)) << text;
  return out;
}

CidrSet set(std::initializer_list<const char*> cidrs) {
  CidrSet s;
  for (const char* text : cidrs) {
    Cidr c;
    std::string error;
    EXPECT_TRUE(parseCidr(text, c, error)) << text << ": " << error;
    s.add(c);
  }
  return s;
}

std::string cidrError(const char* text) {
  Cidr c;
  std::string error;
  EXPECT_FALSE(parseCidr(text, c, error)) << text;
  return error;
}

std::string format(const Ip128& address) {
  char buf[46];
  size_t n = formatIp(address, buf);
  return std::string(buf, n);
}

TEST(ParseIp, AcceptsIpv4AndIpv6) {
  Ip128 a = ip("10.1.2.3");
  EXPECT_TRUE(a.v4());
  EXPECT_EQ(a.hi, 0u);
  EXPECT_EQ(a.lo, 0xFFFF0A010203ull);
  Ip128 b = ip("2001:db8::1");
  EXPECT_FALSE(b.v4());
  EXPECT_EQ(b.hi, 0x20010DB800000000ull);
  EXPECT_EQ(b.lo, 1u);
}

TEST(ParseIp, MappedIpv6IsTheSameAsIpv4) {
  EXPECT_EQ(ip("::ffff:1.2.3.4"), ip("1.2.3.4"));
  EXPECT_EQ(ip("::FFFF:0102:0304"), ip("1.2.3.4"));
  EXPECT_TRUE(ip("::ffff:1.2.3.4").v4());
  EXPECT_FALSE(ip("::1.2.3.4").v4());  // IPv4-compatible (deprecated) is plain IPv6
}

TEST(ParseIp, RefusesAnythingElse) {
  Ip128 out;
  for (const char* bad : {"", " 1.2.3.4", "1.2.3.4 ", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4",
                          "1.2.3.4:80", "[::1]", "fe80::1%eth0", "example.com", "::g",
                          "1:2:3:4:5:6:7:8:9", "unknown", "0x7f.1", "-"}) {
    EXPECT_FALSE(parseIp(bad, out)) << bad;
  }
  // Longer than any address: refused without reaching inet_pton.
  EXPECT_FALSE(parseIp(std::string(100, '1'), out));
  // An embedded NUL must not make "1.2.3.4\0junk" parse as 1.2.3.4.
  EXPECT_FALSE(parseIp(std::string("1.2.3.4\0junk", 12), out));
}

TEST(FormatIp, CanonicalText) {
  EXPECT_EQ(format(ip("10.0.0.1")), "10.0.0.1");
  EXPECT_EQ(format(ip("::ffff:10.0.0.1")), "10.0.0.1");
  EXPECT_EQ(format(ip("2001:DB8:0:0::1")), "2001:db8::1");
}

TEST(PrefixMask, Boundaries) {
  EXPECT_EQ(prefixMask(0), (Ip128{0, 0}));
  EXPECT_EQ(prefixMask(1), (Ip128{1ull << 63, 0}));
  EXPECT_EQ(prefixMask(64), (Ip128{~0ull, 0}));
  EXPECT_EQ(prefixMask(65), (Ip128{~0ull, 1ull << 63}));
  EXPECT_EQ(prefixMask(127), (Ip128{~0ull, ~1ull}));
  EXPECT_EQ(prefixMask(128), (Ip128{~0ull, ~0ull}));
}

TEST(ParseCidr, BareAddressesAreHostRoutes) {
  Cidr c;
  std::string error;
  ASSERT_TRUE(parseCidr("127.0.0.1", c, error));
  EXPECT_EQ(c.prefix, 128);
  EXPECT_TRUE(c.v4);
  ASSERT_TRUE(parseCidr("::1", c, error));
  EXPECT_EQ(c.prefix, 128);
  EXPECT_FALSE(c.v4);
  ASSERT_TRUE(parseCidr("10.0.0.0/8", c, error));
  EXPECT_EQ(c.prefix, 104);
  ASSERT_TRUE(parseCidr("0.0.0.0/0", c, error));
  EXPECT_EQ(c.prefix, 96);
  ASSERT_TRUE(parseCidr("::ffff:10.0.0.0/104", c, error));
  EXPECT_TRUE(c.v4);
  EXPECT_EQ(c.prefix, 104);
}

TEST(ParseCidr, ErrorsSayWhy) {
  EXPECT_NE(cidrError("10.0.0.0/33").find("from 0 to 32"), std::string::npos);
  EXPECT_NE(cidrError("2001:db8::/129").find("from 0 to 128"), std::string::npos);
  EXPECT_NE(cidrError("10.0.0.0/").find("prefix length"), std::string::npos);
  EXPECT_NE(cidrError("10.0.0.0/-1").find("prefix length"), std::string::npos);
  EXPECT_NE(cidrError("10.0.0.0/8/8").find("prefix length"), std::string::npos);
  EXPECT_NE(cidrError("10.0.0.0/1000").find("prefix length"), std::string::npos);
  EXPECT_NE(cidrError("10.0.0/8").find("expected an IP address"), std::string::npos);
  EXPECT_NE(cidrError("localhost").find("expected an IP address"), std::string::npos);
  EXPECT_NE(cidrError("").find("expected an IP address"), std::string::npos);
  std::string host_bits = cidrError("10.1.2.3/8");
  EXPECT_NE(host_bits.find("did you mean 10.0.0.0/8?"), std::string::npos) << host_bits;
  host_bits = cidrError("2001:db8::1/32");
  EXPECT_NE(host_bits.find("did you mean 2001:db8::/32?"), std::string::npos) << host_bits;
}

TEST(CidrSet, Ipv4Prefixes) {
  CidrSet s = set({"10.0.0.0/8", "192.168.1.0/24", "172.16.0.0/12", "8.8.8.8"});
  EXPECT_EQ(s.size(), 4u);
  EXPECT_TRUE(s.contains(ip("10.0.0.0")));
  EXPECT_TRUE(s.contains(ip("10.255.255.255")));
  EXPECT_FALSE(s.contains(ip("11.0.0.0")));
  EXPECT_FALSE(s.contains(ip("9.255.255.255")));
  EXPECT_TRUE(s.contains(ip("192.168.1.77")));
  EXPECT_FALSE(s.contains(ip("192.168.2.1")));
  EXPECT_TRUE(s.contains(ip("172.31.255.1")));
  EXPECT_FALSE(s.contains(ip("172.32.0.1")));
  EXPECT_TRUE(s.contains(ip("8.8.8.8")));
  EXPECT_FALSE(s.contains(ip("8.8.8.9")));
}

TEST(CidrSet, Ipv4RulesMatchMappedClients) {
  CidrSet s = set({"10.0.0.0/8"});
  EXPECT_TRUE(s.contains(ip("::ffff:10.9.8.7")));
  EXPECT_FALSE(s.contains(ip("::ffff:11.9.8.7")));
  CidrSet mapped_rule = set({"::ffff:10.0.0.0/104"});
  EXPECT_TRUE(mapped_rule.contains(ip("10.1.1.1")));
  EXPECT_FALSE(mapped_rule.contains(ip("11.1.1.1")));
}

TEST(CidrSet, Ipv6Prefixes) {
  CidrSet s = set({"2001:db8::/32", "fe80::/10", "::1", "2001:db8:ffff:ffff::/64"});
  EXPECT_TRUE(s.contains(ip("2001:db8::1")));
  EXPECT_TRUE(s.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(s.contains(ip("2001:db9::")));
  EXPECT_TRUE(s.contains(ip("febf::1")));
  EXPECT_FALSE(s.contains(ip("fec0::1")));
  EXPECT_TRUE(s.contains(ip("::1")));
  EXPECT_FALSE(s.contains(ip("::2")));
  EXPECT_FALSE(s.contains(ip("::")));
}

TEST(CidrSet, FamiliesStayApart) {
  // "::/0" is every IPv6 client, not the IPv4 ones that map into it.
  CidrSet v6all = set({"::/0"});
  EXPECT_TRUE(v6all.contains(ip("2001:db8::1")));
  EXPECT_TRUE(v6all.contains(ip("::")));
  EXPECT_FALSE(v6all.contains(ip("1.2.3.4")));
  EXPECT_FALSE(v6all.contains(ip("::ffff:1.2.3.4")));
  CidrSet v4all = set({"0.0.0.0/0"});
  EXPECT_TRUE(v4all.contains(ip("1.2.3.4")));
  EXPECT_TRUE(v4all.contains(ip("255.255.255.255")));
  EXPECT_FALSE(v4all.contains(ip("::1")));
  EXPECT_FALSE(v4all.contains(ip("::")));
}

TEST(CidrSet, NonByteAlignedPrefixes) {
  CidrSet s = set({"10.0.0.128/25", "2001:db8::8000:0:0:0/65"});
  EXPECT_TRUE(s.contains(ip("10.0.0.128")));
  EXPECT_TRUE(s.contains(ip("10.0.0.255")));
  EXPECT_FALSE(s.contains(ip("10.0.0.127")));
  EXPECT_TRUE(s.contains(ip("2001:db8::8000:0:0:1")));
  EXPECT_FALSE(s.contains(ip("2001:db8::7fff:ffff:ffff:ffff")));
}

TEST(CidrSet, EmptyAndDuplicates) {
  CidrSet empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_FALSE(empty.contains(ip("1.2.3.4")));
  CidrSet dup = set({"10.0.0.0/8", "10.0.0.0/8"});
  EXPECT_TRUE(dup.contains(ip("10.1.1.1")));
}

TEST(CidrSet, ManyNetworksOfOneLength) {
  // The sorted-bucket lookup must find every entry of a large list and nothing else.
  CidrSet s;
  for (int i = 0; i < 256; i += 2) {
    Cidr c;
    std::string error;
    std::string text = "10." + std::to_string(i) + ".0.0/16";
    ASSERT_TRUE(parseCidr(text, c, error)) << error;
    s.add(c);
  }
  for (int i = 0; i < 256; ++i) {
    std::string text = "10." + std::to_string(i) + ".3.4";
    EXPECT_EQ(s.contains(ip(text.c_str())), i % 2 == 0) << text;
  }
}

}  // namespace
}  // namespace sluice::ipmatch
