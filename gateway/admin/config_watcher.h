// `watch: true`: reloads when the config file changes. Watches the file's directory
// with inotify rather than the file, because editors and deploy tools replace a file by
// renaming a new one over it (and Kubernetes swaps a symlinked directory). Events are
// debounced so that a save that writes in several steps reloads once. Main thread only.
#pragma once

#include <functional>
#include <string>

struct event;
struct event_base;

namespace sluice {

class ConfigWatcher {
 public:
  // `on_change` runs on `base`'s thread, about 100ms after the last change seen.
  ConfigWatcher(event_base* base, const std::string& path, std::function<void()> on_change);
  ~ConfigWatcher();
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  bool ok() const { return fd_ >= 0; }

 private:
  static void onEvents(int fd, short what, void* arg);
  static void onQuiet(int fd, short what, void* arg);

  std::string name_;  // the file's name in its directory
  std::function<void()> on_change_;
  int fd_ = -1;  // inotify
  event* ev_ = nullptr;
  event* debounce_ = nullptr;
};

}  // namespace sluice
