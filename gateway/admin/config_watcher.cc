#include "gateway/admin/config_watcher.h"

#include <event2/event.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gateway/server/log.h"

namespace sluice {
namespace {
constexpr timeval kDebounce{0, 100'000};
}  // namespace

ConfigWatcher::ConfigWatcher(event_base* base, const std::string& path,
                             std::function<void()> on_change)
    : on_change_(std::move(on_change)) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  name_ = slash == std::string::npos ? path : path.substr(slash + 1);
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    LOG_ERROR("watch: inotify: %s", std::strerror(errno));
    return;
  }
  // IN_CLOSE_WRITE: written in place; IN_MOVED_TO / IN_CREATE: replaced by rename or
  // created anew; IN_DELETE is left out: a deleted file has nothing to load yet.
  if (inotify_add_watch(fd_, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
    LOG_ERROR("watch: cannot watch %s: %s", dir.c_str(), std::strerror(errno));
    ::close(fd_);
    fd_ = -1;
    return;
  }
  ev_ = event_new(base, fd_, EV_READ | EV_PERSIST, &onEvents, this);
  event_add(ev_, nullptr);
  debounce_ = evtimer_new(base, &onQuiet, this);
  LOG_INFO("watching %s for changes", path.c_str());
}

ConfigWatcher::~ConfigWatcher() {
  if (ev_) event_free(ev_);
  if (debounce_) event_free(debounce_);
  if (fd_ >= 0) ::close(fd_);
}

void ConfigWatcher::onEvents(int fd, short, void* arg) {
  auto* self = static_cast<ConfigWatcher*>(arg);
  alignas(inotify_event) char buf[16 * 1024];
  bool relevant = false;
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      auto* e = reinterpret_cast<const inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      // A name that is not the file's can still be its new content: a Kubernetes
      // ConfigMap volume renames a "..data" symlink whose target holds the file.
      std::string_view name = e->len > 0 ? std::string_view(e->name) : std::string_view();
      if (name == self->name_ || name.starts_with("..")) relevant = true;
    }
  }
  // Every new event restarts the quiet period: one reload per burst of writes.
  if (relevant) evtimer_add(self->debounce_, &kDebounce);
}

void ConfigWatcher::onQuiet(int, short, void* arg) {
  auto* self = static_cast<ConfigWatcher*>(arg);
  self->on_change_();
}

}  // namespace sluice
