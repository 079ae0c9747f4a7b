// The admin listener: a small HTTP/1.1 server for operators (/metrics, /healthz, /ready,
// /config, /routes, /usage, POST /reload). It runs on the main thread's event loop and never on
// a worker, so a slow scrape or a reload cannot delay a request; it parses with the same
// strict HTTP/1 parser as the proxy. It never shows the admin token.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"

struct event;
struct event_base;

namespace sluice {

class UsageEndpoint;

// What the admin listener asks of the process (the server implements it).
class AdminHost {
 public:
  struct ReloadOutcome {
    bool ok = false;
    uint16_t status = 200;            // 200, or 400 (invalid config), 500, 503 (draining)
    std::vector<std::string> errors;  // FILE:LINE:COL: message
    uint64_t generation = 0;          // serving after the reload
  };
  using ReloadDone = std::function<void(const ReloadOutcome&)>;

  virtual ~AdminHost() = default;
  virtual bool ready() const = 0;  // config loaded, listeners listening, not draining
  virtual std::shared_ptr<const config::Config> currentConfig() const = 0;
  virtual uint64_t generation() const = 0;
  virtual std::string metricsText() = 0;
  // Loads the config file again; `done` runs once new streams use it (or it failed).
  virtual void reload(const char* source, ReloadDone done) = 0;
};

class AdminServer {
 public:
  AdminServer(event_base* base, AdminHost& host);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Serves a listening socket (bound by the caller), closing the previous one; open
  // admin connections are not touched.
  void listen(int fd, std::string address);
  void stopListening();
  void setToken(std::string token) { token_ = std::move(token); }

  // A listening socket for `address` (SO_REUSEADDR, non-blocking); -1 with `error`.
  static int openSocket(const config::SocketAddress& address, std::string& error);

 private:
  class Connection;
  static void onAccept(int fd, short what, void* arg);
  void closed(uint64_t id);
  bool authorized(const Connection& c) const;

  event_base* base_;
  AdminHost& host_;
  std::string token_;
  int fd_ = -1;
  event* accept_ev_ = nullptr;
  uint64_t next_id_ = 1;
  // By id, so that a reload finishing after its client left finds nothing to answer.
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
  std::vector<std::unique_ptr<Connection>> dead_;
  event* reap_ev_ = nullptr;
  std::unique_ptr<UsageEndpoint> usage_;  // GET /usage
};

}  // namespace sluice
