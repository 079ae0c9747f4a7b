// Loads plugins for the config loader: reads the top-level `plugins:` list, dlopens each
// file, checks its ABI version before calling anything in it, and registers its filter
// name for the filter lists of that load. Runs where configs load, never on a worker.
#pragma once

#include <memory>
#include <string>

#include "plugins/sluice_plugin.h"

namespace sluice::plugins {

// One loaded shared object. Every filter factory made from it holds it, so the code stays
// mapped as long as any config snapshot can still call into it.
class Library {
 public:
  // Loads `path` (used as is: resolve relative paths first). On failure returns null and
  // sets `error` to a message that names the file.
  static std::shared_ptr<const Library> open(const std::string& path, std::string& error);
  ~Library();
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;

  const sluice_plugin_v1& api() const { return *api_; }
  const std::string& path() const { return path_; }

 private:
  Library(void* handle, const sluice_plugin_v1* api, std::string path)
      : handle_(handle), api_(api), path_(std::move(path)) {}

  void* handle_;
  const sluice_plugin_v1* api_;
  std::string path_;
};

}  // namespace sluice::plugins
