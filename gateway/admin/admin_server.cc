#include "gateway/admin/admin_server.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "gateway/admin/config_json.h"
#include "gateway/admin/usage.h"
#include "gateway/http/h1_parser.h"
#include "gateway/server/io.h"
#include "gateway/server/log.h"

namespace sluice {
namespace {

constexpr size_t kMaxConnections = 256;
constexpr uint64_t kMaxBody = 64 * 1024;  // POST /reload needs none; tolerate a little
constexpr size_t kMaxBuffered = http::kMaxHeadBytes + 1024;
constexpr timeval kReadTimeout{30, 0};  // a head (or the next one) must arrive within this

std::string jsonMessage(std::string_view message) {
  return nlohmann::json{{"message", message}}.dump() + "\n";
}

// Compares every byte whatever the input, so that response timing does not tell how
// much of a guessed token was right.
bool constantTimeEquals(std::string_view a, std::string_view b) {
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

}  // namespace

class AdminServer::Connection {
 public:
  Connection(AdminServer& server, uint64_t id, int fd) : server_(server), id_(id), fd_(fd) {
    read_ev_ = event_new(server.base_, fd_, EV_READ | EV_PERSIST, &onRead, this);
    write_ev_ = event_new(server.base_, fd_, EV_WRITE | EV_PERSIST, &onWrite, this);
    event_add(read_ev_, &kReadTimeout);
  }
  ~Connection() {
    event_free(read_ev_);
    event_free(write_ev_);
    if (fd_ >= 0) ::close(fd_);
  }

  // The answer to a POST /reload that was waiting for the reload to finish.
  void reloaded(const AdminHost::ReloadOutcome& outcome) {
    if (state_ != State::kWaiting) return;
    nlohmann::json body;
    body["result"] = outcome.ok ? "ok" : "error";
    body["generation"] = outcome.generation;
    if (!outcome.ok) body["errors"] = outcome.errors;
    state_ = State::kReadHead;
    respond(outcome.status, "application/json", body.dump() + "\n");
    if (state_ == State::kReadHead) process();
  }

  const std::string& authorization() const { return authorization_; }

  // The answer to a GET /usage that was waiting for Redis.
  void usageAnswered(uint16_t status, const std::string& body) {
    if (state_ != State::kWaiting) return;
    state_ = State::kReadHead;
    respond(status, "application/json", body);
    if (state_ == State::kReadHead) process();
  }

 private:
  enum class State : uint8_t { kReadHead, kReadBody, kWaiting, kClosing };

  static void onRead(evutil_socket_t, short what, void* arg) {
    static_cast<Connection*>(arg)->handleRead(what);
  }
  static void onWrite(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if (self->flush() && self->out_.empty()) event_del(self->write_ev_);
  }

  void handleRead(short what) {
    if (what & EV_TIMEOUT) {
      if (state_ != State::kWaiting) close();
      return;
    }
    char buf[16 * 1024];
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      close();
      return;
    }
    if (n < 0) return;
    if (state_ == State::kClosing) return;  // discarded
    in_.append(buf, static_cast<size_t>(n));
    if (in_.size() > kMaxBuffered + kMaxBody) {
      close();
      return;
    }
    process();
  }

  void process() {
    while (state_ == State::kReadHead || state_ == State::kReadBody) {
      if (state_ == State::kReadBody) {
        size_t take = std::min<uint64_t>(body_left_, in_.size());
        in_.erase(0, take);
        body_left_ -= take;
        if (body_left_ > 0) return;
        dispatch();
        continue;
      }
      if (in_.empty()) return;
      method_.clear();
      size_t look = std::min(in_.size(), kMaxBuffered);
      http::ParseResult r = scanner_.scan(in_.data(), look);
      if (r.state == http::ParseState::kIncomplete) return;
      if (r.state == http::ParseState::kComplete) {
        r = http::parseRequestHead(in_.data(), r.head_length, head_);
      }
      scanner_.reset();
      if (r.state != http::ParseState::kComplete) {
        uint16_t status = r.error_status ? r.error_status : 400;
        keep_alive_ = false;
        respond(status, "application/json", jsonMessage(io::reasonPhrase(status)));
        return;
      }
      // Copy what is needed: the head's views die with the bytes erased below.
      method_.assign(head_.method);
      path_.assign(head_.path);
      query_.assign(head_.query);
      authorization_.clear();
      for (size_t i = 0; i < head_.header_count; ++i) {
        if (http::iequals(head_.headers[i].name, "authorization")) {
          authorization_.assign(head_.headers[i].value);
        }
      }
      keep_alive_ = head_.keep_alive;
      http::Framing framing = head_.framing;
      uint64_t length = head_.content_length;
      in_.erase(0, r.head_length);
      if (framing == http::Framing::kChunked) {
        keep_alive_ = false;
        respond(411, "application/json", jsonMessage("Length Required"));
        return;
      }
      body_left_ = framing == http::Framing::kContentLength ? length : 0;
      if (body_left_ > kMaxBody) {
        keep_alive_ = false;
        respond(413, "application/json", jsonMessage("Content Too Large"));
        return;
      }
      state_ = State::kReadBody;
    }
  }

  void dispatch() {
    state_ = State::kReadHead;
    bool get = method_ == "GET" || method_ == "HEAD";
    auto allow = [&](const char* methods) {
      respond(405, "application/json", jsonMessage("Method Not Allowed"),
              std::string("Allow: ") + methods + "\r\n");
    };
    AdminHost& host = server_.host_;
    if (path_ == "/healthz") {
      if (!get) return allow("GET, HEAD");
      return respond(200, "application/json", "{\"status\":\"ok\"}\n");
    }
    if (path_ == "/ready") {
      if (!get) return allow("GET, HEAD");
      if (host.ready()) return respond(200, "application/json", "{\"status\":\"ready\"}\n");
      return respond(503, "application/json", "{\"status\":\"draining\"}\n");
    }
    bool known = path_ == "/metrics" || path_ == "/config" || path_ == "/routes" ||
                 path_ == "/reload" || path_ == "/usage";
    if (!known) return respond(404, "application/json", jsonMessage("Not Found"));
    if (!server_.authorized(*this)) {
      return respond(401, "application/json", jsonMessage("Unauthorized"),
                     "WWW-Authenticate: Bearer realm=\"sluice-admin\"\r\n");
    }
    if (path_ == "/reload") {
      if (method_ != "POST") return allow("POST");
      state_ = State::kWaiting;
      AdminServer* server = &server_;
      uint64_t id = id_;
      host.reload("POST /reload", [server, id](const AdminHost::ReloadOutcome& outcome) {
        auto it = server->connections_.find(id);
        if (it != server->connections_.end()) it->second->reloaded(outcome);
      });
      return;
    }
    if (!get) return allow("GET, HEAD");
    if (path_ == "/metrics") {
      return respond(200, "text/plain; version=0.0.4; charset=utf-8", host.metricsText());
    }
    std::shared_ptr<const config::Config> config = host.currentConfig();
    if (path_ == "/config") {
      return respond(200, "application/json", configJson(*config, host.generation()));
    }
    if (path_ == "/usage") {
      uint16_t status = 0;
      std::string body;
      AdminServer* server = &server_;
      uint64_t id = id_;
      auto done = [server, id](uint16_t status, const std::string& body) {
        auto it = server->connections_.find(id);
        if (it != server->connections_.end()) it->second->usageAnswered(status, body);
      };
      state_ = State::kWaiting;  // `done` may run before handle() returns
      if (server_.usage_->handle(*config, query_, status, body, done)) {
        state_ = State::kReadHead;
        return respond(status, "application/json", body);
      }
      return;
    }
    respond(200, "application/json", routesJson(*config));
  }

  void respond(uint16_t status, std::string_view content_type, const std::string& body,
               const std::string& extra = {}) {
    std::string& h = out_;
    h.append("HTTP/1.1 ");
    io::appendUint(h, status);
    h.append(" ").append(io::reasonPhrase(status)).append("\r\n");
    h.append("Content-Type: ").append(content_type).append("\r\n");
    h.append("Cache-Control: no-store\r\n");
    h.append(extra);
    h.append("Content-Length: ");
    io::appendUint(h, body.size());
    h.append("\r\n");
    if (!keep_alive_) h.append("Connection: close\r\n");
    h.append("\r\n");
    if (method_ != "HEAD") h.append(body);
    if (!keep_alive_) {
      state_ = State::kClosing;
      in_.clear();
    }
    if (!flush()) return;
    if (!out_.empty()) event_add(write_ev_, nullptr);
  }

  // False if the connection was closed.
  bool flush() {
    while (out_off_ < out_.size()) {
      ssize_t n = ::send(fd_, out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        if (errno == EINTR) continue;
        close();
        return false;
      }
      out_off_ += static_cast<size_t>(n);
    }
    out_.clear();
    out_off_ = 0;
    if (state_ == State::kClosing) {
      close();
      return false;
    }
    return true;
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    state_ = State::kClosing;
    event_del(read_ev_);
    event_del(write_ev_);
    server_.closed(id_);
  }

  AdminServer& server_;
  uint64_t id_;
  int fd_;
  event* read_ev_;
  event* write_ev_;
  State state_ = State::kReadHead;
  bool closed_ = false;
  bool keep_alive_ = true;
  std::string in_;
  std::string out_;
  size_t out_off_ = 0;
  uint64_t body_left_ = 0;
  http::HeadScanner scanner_{true};
  http::RequestHead head_;
  std::string method_;
  std::string path_;
  std::string query_;
  std::string authorization_;
};

AdminServer::AdminServer(event_base* base, AdminHost& host)
    : base_(base), host_(host), usage_(std::make_unique<UsageEndpoint>(base)) {
  reap_ev_ = event_new(
      base_, -1, 0,
      [](evutil_socket_t, short, void* arg) { static_cast<AdminServer*>(arg)->dead_.clear(); },
      this);
}

AdminServer::~AdminServer() {
  stopListening();
  connections_.clear();
  dead_.clear();
  usage_.reset();
  event_free(reap_ev_);
}

int AdminServer::openSocket(const config::SocketAddress& address, std::string& error) {
  int fd = ::socket(address.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (address.addr.ss_family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address.addr), address.len) < 0 ||
      ::listen(fd, 128) < 0) {
    error = std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

void AdminServer::listen(int fd, std::string address) {
  stopListening();
  fd_ = fd;
  accept_ev_ = event_new(base_, fd_, EV_READ | EV_PERSIST, &onAccept, this);
  event_add(accept_ev_, nullptr);
  LOG_INFO("admin listener on %s", address.c_str());
}

void AdminServer::stopListening() {
  if (accept_ev_) event_free(accept_ev_);
  accept_ev_ = nullptr;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void AdminServer::onAccept(int fd, short, void* arg) {
  auto* self = static_cast<AdminServer*>(arg);
  for (int i = 0; i < 16; ++i) {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) return;
    if (self->connections_.size() >= kMaxConnections) {
      ::close(c);
      continue;
    }
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint64_t id = self->next_id_++;
    self->connections_.emplace(id, std::make_unique<Connection>(*self, id, c));
  }
}

void AdminServer::closed(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  // Called from the connection's own callbacks: it dies on the next loop iteration.
  if (dead_.empty()) event_active(reap_ev_, 0, 0);
  dead_.push_back(std::move(it->second));
  connections_.erase(it);
}

bool AdminServer::authorized(const Connection& c) const {
  if (token_.empty()) return true;
  std::string_view value = c.authorization();
  constexpr std::string_view kScheme = "Bearer ";
  if (value.size() < kScheme.size() || !http::iequals(value.substr(0, kScheme.size()), kScheme)) {
    return false;
  }
  value.remove_prefix(kScheme.size());
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  return constantTimeEquals(value, token_);
}

}  // namespace sluice
