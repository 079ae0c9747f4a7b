#include "gateway/redis/redis_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <cstring>
#include <vector>

#include "gateway/admin/metrics.h"
#include "gateway/redis/connection.h"
#include "gateway/server/log.h"
#include "gateway/server/tls_client.h"

namespace sluice::redis {
namespace {

std::string sha1Hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha1(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

// The config loader resolves `address`; a config built by hand may leave it empty:
// then an IP literal or "localhost" in `host` is taken (never a DNS lookup here).
void fillAddress(config::Redis& c) {
  if (c.address.len != 0) return;
  std::string host = c.host == "localhost" ? "127.0.0.1" : c.host;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&c.address.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&c.address.addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(c.port);
    c.address.len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(c.port);
    c.address.len = sizeof(sockaddr_in6);
  } else {
    LOG_ERROR("redis: host '%s' was not resolved when the config loaded", c.host.c_str());
  }
}

class ClientImpl final : public Client {
 public:
  ClientImpl(event_base* base, const config::Redis& config, RedisMetrics* metrics) {
    shared_.base = base;
    shared_.config = config;
    fillAddress(shared_.config);
    shared_.metrics = metrics ? metrics : &own_metrics_;
    if (config.tls)
      shared_.ssl_ctx = tls::makeClientContext(config.tls_verify, config.tls_ca, "redis");
    unsigned pool = std::max(1u, std::min(config.pool, 16u));
    for (unsigned i = 0; i < pool; ++i) {
      connections_.push_back(std::make_unique<detail::Connection>(shared_, i));
    }
  }

  ~ClientImpl() override {
    connections_.clear();
    if (shared_.ssl_ctx) SSL_CTX_free(shared_.ssl_ctx);
  }

  uint64_t send(Handler* handler, int argc, const char* const* argv, const size_t* lens) override {
    detail::Connection* c = pick();
    if (c == nullptr) return unavailable(handler);
    return c->send(handler, argc, argv, lens);
  }

  uint64_t eval(Handler* handler, const Script& script, int nkeys, const std::string_view* keys,
                int nargs, const std::string_view* args) override {
    detail::Connection* c = pick();
    if (c == nullptr) return unavailable(handler);
    return c->eval(handler, scriptIndex(script), nkeys, keys, nargs, args);
  }

  void cancel(uint64_t ticket) override {
    unsigned index = static_cast<unsigned>(ticket & ((1u << detail::kIndexBits) - 1));
    if (index < connections_.size()) connections_[index]->cancel(ticket);
  }

  bool connected() const override {
    for (const auto& c : connections_) {
      if (c->ready()) return true;
    }
    return false;
  }

 private:
  detail::Connection* pick() {
    size_t n = connections_.size();
    for (size_t i = 0; i < n; ++i) {
      size_t k = (next_ + i) % n;
      if (connections_[k]->ready()) {
        next_ = (k + 1) % n;
        return connections_[k].get();
      }
    }
    return nullptr;
  }

  uint64_t unavailable(Handler* handler) {
    uint64_t ticket = (sync_seq_++ << detail::kIndexBits) | detail::kNoConnection;
    shared_.metrics->unavailable.add();
    if (handler) handler->onRedisReply(ticket, Status::kUnavailable, nullptr);
    return ticket;
  }

  size_t scriptIndex(const Script& script) {
    // A handful of scripts per process: a linear scan beats hashing.
    for (size_t i = 0; i < shared_.scripts.size(); ++i) {
      if (shared_.scripts[i].first == script.sha1) return i;
    }
    shared_.scripts.emplace_back(script.sha1, script.source);
    return shared_.scripts.size() - 1;
  }

  RedisMetrics own_metrics_;
  detail::Shared shared_;
  std::vector<std::unique_ptr<detail::Connection>> connections_;
  size_t next_ = 0;
  uint64_t sync_seq_ = 1;
};

}  // namespace

const char* statusName(Status status) {
  switch (status) {
    case Status::kReply:
      return "reply";
    case Status::kTimeout:
      return "timeout";
    case Status::kUnavailable:
      return "unavailable";
  }
  return "?";
}

Script::Script(std::string src) : source(std::move(src)), sha1(sha1Hex(source)) {}

uint64_t Client::send(Handler* handler, std::initializer_list<std::string_view> args) {
  constexpr size_t kMax = 64;
  const char* argv[kMax];
  size_t lens[kMax];
  int argc = 0;
  for (std::string_view a : args) {
    if (argc == static_cast<int>(kMax)) break;
    argv[argc] = a.data();
    lens[argc] = a.size();
    ++argc;
  }
  return send(handler, argc, argv, lens);
}

std::unique_ptr<Client> makeClient(event_base* base, const config::Redis& config,
                                   RedisMetrics* metrics) {
  return std::make_unique<ClientImpl>(base, config, metrics);
}

}  // namespace sluice::redis
