// Internal to the config loader: the top-level `redis:` section (server URL, credentials,
// timeouts, pool size, TLS). Read before any filter so that filters can check
// `config.redis.enabled`. Never puts the password in an error message or in `url`.
#pragma once

#include <string>
#include <string_view>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace sluice::config::detail {

// What a redis:// or rediss:// URL holds. The password is percent-decoded like the
// user name; `redacted` is the URL as written with the password replaced by "***".
struct RedisUrl {
  bool tls = false;
  std::string host;  // without brackets for IPv6
  uint16_t port = 6379;
  std::string username;
  std::string password;
  bool has_password = false;
  bool has_db = false;
  unsigned db = 0;
  std::string redacted;
};

// False with `error` set (never containing the password) when `url` is not a valid
// redis://[user[:password]@]host[:port][/db] or rediss:// URL.
bool parseRedisUrl(std::string_view url, RedisUrl& out, std::string& error);

// `redis: {url, username, password, db, connect_timeout, command_timeout, pool,
// tls: {ca, verify}}`. Resolves the host name here, on the loading thread, so that a
// worker never waits for DNS. Relative `tls.ca` paths are taken from `config_dir`.
void readRedis(Reader& reader, const Field& field, const std::string& config_dir, Redis& out);

}  // namespace sluice::config::detail
