#include "gateway/router/path.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <string_view>

namespace sluice::router {
namespace {

struct Case {
  std::string_view raw;
  PathStatus status;
  std::string_view want;  // only meaningful for kOk
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  return os << '"' << c.raw << '"';  // readable test names in failure output
}

constexpr PathStatus kOk = PathStatus::kOk;
constexpr PathStatus kInvalid = PathStatus::kInvalid;
constexpr PathStatus kEscapes = PathStatus::kEscapesRoot;

constexpr Case kCases[] = {
    // Already normal: copied as is.
    {"/", kOk, "/"},
    {"/a/b", kOk, "/a/b"},
    {"/users/42/posts", kOk, "/users/42/posts"},
    {"/a-b_c~d.e", kOk, "/a-b_c~d.e"},
    {"/\xc3\xa9t\xc3\xa9", kOk, "/\xc3\xa9t\xc3\xa9"},
    // Slashes.
    {"/a/b/", kOk, "/a/b/"},
    {"//a///b", kOk, "/a/b"},
    {"/a//", kOk, "/a/"},
    {"//", kOk, "/"},
    // Dot segments.
    {"/.", kOk, "/"},
    {"/./", kOk, "/"},
    {"/a/./b", kOk, "/a/b"},
    {"/a/.", kOk, "/a/"},
    {"/a/..", kOk, "/"},
    {"/a/b/..", kOk, "/a/"},
    {"/a/b/../c", kOk, "/a/c"},
    {"/a/b/../../c/", kOk, "/c/"},
    {"/a//..//b", kOk, "/b"},
    {"/...", kOk, "/..."},
    {"/.a/..b/a..", kOk, "/.a/..b/a.."},
    {"/..", kEscapes, ""},
    {"/../a", kEscapes, ""},
    {"/a/../..", kEscapes, ""},
    {"/a/b/../../../c", kEscapes, ""},
    // Escapes: unreserved ones are decoded, the rest upper-cased.
    {"/%7Euser", kOk, "/~user"},
    {"/%41%62%63", kOk, "/Abc"},
    {"/%2D%2e%5f%7e%30", kOk, "/-._~0"},
    {"/a%2fb", kOk, "/a%2Fb"},
    {"/a%2Fb", kOk, "/a%2Fb"},
    {"/%c3%a9", kOk, "/%C3%A9"},
    {"/a%20b", kOk, "/a%20b"},
    {"/100%25", kOk, "/100%25"},
    {"/%3f%23", kOk, "/%3F%23"},
    // Dot segments spelled with escapes are still dot segments...
    {"/a/%2e/b", kOk, "/a/b"},
    {"/a/%2E%2e/b", kOk, "/b"},
    {"/a/.%2e", kOk, "/"},
    {"/%2e%2e/etc/passwd", kEscapes, ""},
    {"/a/%2e%2E/%2e%2e", kEscapes, ""},
    // ...but an encoded slash is not a separator, so ".." between them is plain text.
    {"/a%2f..%2fb", kOk, "/a%2F..%2Fb"},
    // Malformed.
    {"", kInvalid, ""},
    {"a/b", kInvalid, ""},
    {"*", kInvalid, ""},
    {"/%zz", kInvalid, ""},
    {"/%4", kInvalid, ""},
    {"/%", kInvalid, ""},
    {"/a%g1", kInvalid, ""},
    {"/%4/", kInvalid, ""},
    {"/%00", kInvalid, ""},
    {"/%1f", kInvalid, ""},
    {"/%0a", kInvalid, ""},
    {"/%7F", kInvalid, ""},
    {"/a\x01"
     "b",
     kInvalid, ""},
    {"/a\tb", kInvalid, ""},
    {"/a\x7f", kInvalid, ""},
    {std::string_view("/a\0b", 4), kInvalid, ""},
};

class NormalizePathTest : public testing::TestWithParam<Case> {};

TEST_P(NormalizePathTest, Table) {
  const Case& c = GetParam();
  std::string out = "stale content";
  EXPECT_EQ(normalizePath(c.raw, out), c.status);
  if (c.status == kOk) {
    EXPECT_EQ(out, c.want);
  } else {
    EXPECT_EQ(out, "") << "a refused path must not leave a usable result behind";
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, NormalizePathTest, testing::ValuesIn(kCases));

TEST(NormalizePath, IsIdempotent) {
  for (const Case& c : kCases) {
    std::string once;
    std::string twice;
    if (normalizePath(c.raw, once) != kOk) continue;
    ASSERT_EQ(normalizePath(once, twice), kOk) << c;
    EXPECT_EQ(twice, once) << c;
  }
}

TEST(NormalizePath, ResultAlwaysStartsWithSlash) {
  for (const Case& c : kCases) {
    std::string out;
    if (normalizePath(c.raw, out) == kOk) {
      ASSERT_FALSE(out.empty()) << c;
      EXPECT_EQ(out[0], '/') << c;
    }
  }
}

TEST(NormalizePath, ReusesCapacity) {
  std::string out;
  out.reserve(256);
  const char* buffer = out.data();
  ASSERT_EQ(normalizePath("/users/42/posts/%7Efoo/../bar", out), kOk);
  EXPECT_EQ(out, "/users/42/posts/bar");
  EXPECT_EQ(out.data(), buffer);
  ASSERT_EQ(normalizePath("/another/path", out), kOk);
  EXPECT_EQ(out, "/another/path");
  EXPECT_EQ(out.data(), buffer);
}

TEST(NormalizePath, LongPath) {
  std::string raw;
  std::string want;
  for (int i = 0; i < 1000; ++i) {
    raw += "/seg" + std::to_string(i) + "/./x/..";
    want += "/seg" + std::to_string(i);
  }
  want += "/";  // the final ".." leaves a directory
  std::string out;
  ASSERT_EQ(normalizePath(raw, out), kOk);
  EXPECT_EQ(out, want);
}

}  // namespace
}  // namespace sluice::router
