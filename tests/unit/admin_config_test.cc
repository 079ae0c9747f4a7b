// The `admin:` and `watch:` keys: defaults, values, and the errors a user would see.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace sluice::config {
namespace {

constexpr const char* kBase = R"(listeners:
  - name: public
    address: 127.0.0.1:8080
routes: []
)";

LoadResult load(const std::string& extra) {
  return loadString(std::string(kBase) + extra, "test.yaml");
}

std::vector<std::string> errorsOf(const std::string& extra) {
  std::vector<std::string> out;
  for (const Error& e : load(extra).errors) out.push_back(e.str());
  return out;
}

TEST(AdminConfig, AbsentMeansNoAdminListener) {
  LoadResult r = load("");
  ASSERT_TRUE(r.config) << r.errors[0].str();
  EXPECT_FALSE(r.config->admin.enabled);
  EXPECT_FALSE(r.config->watch);
}

TEST(AdminConfig, EmptyMapOrEmptyValueUsesTheDefaultAddress) {
  for (const char* text : {"admin: {}\n", "admin:\n"}) {
    LoadResult r = load(text);
    ASSERT_TRUE(r.config) << text;
    EXPECT_TRUE(r.config->admin.enabled);
    EXPECT_EQ(r.config->admin.address.text, "127.0.0.1:9901");
    EXPECT_EQ(detail::numericAddress(r.config->admin.address), "127.0.0.1:9901");
    EXPECT_EQ(r.config->admin.token, "");
  }
}

TEST(AdminConfig, AddressAndTokenFromTheEnvironment) {
  setenv("SLUICE_TEST_ADMIN_TOKEN", "abc.DEF-123", 1);
  LoadResult r = load("admin: {address: \"[::1]:9000\", token: \"${SLUICE_TEST_ADMIN_TOKEN}\"}\n");
  unsetenv("SLUICE_TEST_ADMIN_TOKEN");
  ASSERT_TRUE(r.config) << r.errors[0].str();
  EXPECT_EQ(detail::numericAddress(r.config->admin.address), "[::1]:9000");
  EXPECT_EQ(r.config->admin.token, "abc.DEF-123");
}

TEST(AdminConfig, Errors) {
  EXPECT_EQ(errorsOf("admin: {address: 127.0.0.1:8080}\n"),
            std::vector<std::string>{"test.yaml:5:18: address 127.0.0.1:8080 is already used "
                                     "by listener 'public'"});
  EXPECT_EQ(errorsOf("admin: {address: 127.0.0.1:0}\n"),
            std::vector<std::string>{"test.yaml:5:18: port 0 is not valid here"});
  EXPECT_EQ(errorsOf("admin: {token: \"${SLUICE_TEST_UNSET_TOKEN:-}\"}\n"),
            std::vector<std::string>{"test.yaml:5:16: the admin token is empty (leave 'token' "
                                     "out for no authentication)"});
  EXPECT_EQ(errorsOf("admin: {token: \"a b\"}\n"),
            std::vector<std::string>{"test.yaml:5:16: the admin token may contain only visible "
                                     "ASCII characters, no spaces"});
  EXPECT_EQ(errorsOf("admin: {token: \"${SLUICE_TEST_UNSET_TOKEN}\"}\n"),
            std::vector<std::string>{
                "test.yaml:5:16: environment variable SLUICE_TEST_UNSET_TOKEN is not set"});
  EXPECT_EQ(errorsOf("admin: [127.0.0.1:9901]\n"),
            std::vector<std::string>{"test.yaml:5:8: expected a map"});
}

TEST(AdminConfig, TokenNeverInErrors) {
  for (const Error& e : load("admin: {token: \"s3cr3t\", bogus: 1}\n").errors) {
    EXPECT_EQ(e.str().find("s3cr3t"), std::string::npos) << e.str();
  }
}

TEST(WatchConfig, TrueFalseAndErrors) {
  LoadResult r = load("watch: true\n");
  ASSERT_TRUE(r.config);
  EXPECT_TRUE(r.config->watch);
  r = load("watch: false\n");
  ASSERT_TRUE(r.config);
  EXPECT_FALSE(r.config->watch);
  EXPECT_EQ(errorsOf("watch: yes\n"),
            std::vector<std::string>{"test.yaml:5:8: expected true or false"});
  EXPECT_EQ(errorsOf("watch: {}\n"),
            std::vector<std::string>{"test.yaml:5:8: expected true or false"});
}

}  // namespace
}  // namespace sluice::config
