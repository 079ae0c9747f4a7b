#include "plugins/loader.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "config/filter_chain.h"
#include "config/yaml_reader.h"
#include "plugins/plugin_filter.h"
#include "plugins/settings_json.h"

namespace sluice::plugins {

std::shared_ptr<const Library> Library::open(const std::string& path, std::string& error) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    error = "cannot load plugin " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    error = "cannot load plugin " + path + ": not a regular file";
    return nullptr;
  }
  // RTLD_NOW: a plugin that needs a symbol nobody provides fails here, at config load,
  // not on some request later. RTLD_LOCAL: plugins cannot see each other's symbols.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = ::dlerror();
    error = "cannot load plugin " + path + ": " + (why ? why : "dlopen failed");
    return nullptr;
  }
  auto fail = [&](std::string message) {
    error = std::move(message);
    ::dlclose(handle);
    return nullptr;
  };
  // The version is data, read before any plugin code runs: calling into a plugin built
  // for another ABI is what this check exists to prevent.
  const auto* version = static_cast<const uint32_t*>(::dlsym(handle, "sluice_plugin_abi_version"));
  if (!version) {
    return fail(path + " is not a sluice plugin: it does not export 'sluice_plugin_abi_version'");
  }
  if (*version != SLUICE_PLUGIN_ABI_VERSION) {
    return fail("plugin " + path + " was built for plugin ABI version " + std::to_string(*version) +
                ", but this sluice supports ABI version " +
                std::to_string(SLUICE_PLUGIN_ABI_VERSION) +
                "; rebuild it against this sluice's plugins/sluice_plugin.h");
  }
  using InitFn = const sluice_plugin_v1* (*)(uint32_t, const sluice_host_v1*);
  auto init = reinterpret_cast<InitFn>(::dlsym(handle, "sluice_plugin_init"));
  if (!init) return fail("plugin " + path + " does not export 'sluice_plugin_init'");
  const sluice_plugin_v1* api = init(SLUICE_PLUGIN_ABI_VERSION, hostApi());
  if (!api) {
    return fail("plugin " + path + " refused to start (sluice_plugin_init returned NULL)");
  }
  if (api->abi_version != SLUICE_PLUGIN_ABI_VERSION) {
    return fail("plugin " + path + " returned a table for plugin ABI version " +
                std::to_string(api->abi_version) + ", but this sluice supports ABI version " +
                std::to_string(SLUICE_PLUGIN_ABI_VERSION));
  }
  if (!api->create || !api->destroy) {
    return fail("plugin " + path + " has no create or destroy function");
  }
  return std::shared_ptr<const Library>(new Library(handle, api, path));
}

Library::~Library() { ::dlclose(handle_); }

namespace {

using config::detail::Field;
using config::detail::Fields;
using config::detail::Reader;
using config::detail::Schema;

class PluginRegistry final : public FilterRegistry {
 public:
  const FilterParser* find(std::string_view name) const override {
    auto it = parsers_.find(name);
    return it == parsers_.end() ? nullptr : &it->second;
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& [name, parser] : parsers_) out.push_back(name);
    return out;
  }
  void add(const std::string& name, FilterParser parser) { parsers_[name] = std::move(parser); }

 private:
  std::map<std::string, FilterParser, std::less<>> parsers_;
};

FilterParser parserFor(std::string name, std::shared_ptr<const Library> library) {
  return [name = std::move(name), library = std::move(library)](
             FilterParseContext& ctx) -> std::shared_ptr<const FilterFactory> {
    if (!ctx.field.value.IsMap()) {
      ctx.reader.error(ctx.field, "expected a map of settings for plugin filter '" + name + "'");
      return nullptr;
    }
    nlohmann::json settings;
    if (!settingsToJson(ctx.reader, ctx.field, settings)) return nullptr;
    std::string text = settings.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    char error[1024] = "";
    void* instance = library->api().create(text.c_str(), text.size(), error, sizeof error);
    if (!instance) {
      error[sizeof error - 1] = '\0';
      ctx.reader.error(ctx.field, "plugin '" + name + "' refused its settings: " +
                                      (error[0] ? error : "(no reason given)"));
      return nullptr;
    }
    return makeFilterFactory(library, instance);
  };
}

// A plugin that failed to load still names a filter: lists that use it are then
// skipped without a second, misleading "unknown filter" error.
FilterParser brokenParser() {
  return [](FilterParseContext&) -> std::shared_ptr<const FilterFactory> { return nullptr; };
}

std::unique_ptr<FilterRegistry> readPluginList(Reader& reader, const Field& field,
                                               const std::string& config_dir) {
  static const Schema kPlugin{{"name", "path"}};
  std::vector<Field> items;
  if (!reader.list(field, items)) return nullptr;
  auto registry = std::make_unique<PluginRegistry>();
  std::map<std::string, int> first_line;
  for (const Field& item : items) {
    Fields fields;
    if (!reader.map(item, kPlugin, fields)) continue;
    const Field* name_field = reader.required(item, fields, "name");
    const Field* path_field = reader.required(item, fields, "path");
    std::string name;
    if (name_field) {
      std::optional<std::string> text = reader.string(*name_field);
      int line = Reader::valueMark(*name_field).line;
      if (!text) {
      } else if (!config::detail::isValidName(*text)) {
        reader.error(*name_field,
                     "invalid name '" + *text + "' (use letters, digits, '_', '-' and '.')");
      } else if (findFilter(*text)) {
        reader.error(*name_field, "'" + *text + "' is the name of a built-in filter");
      } else if (auto it = first_line.find(*text); it != first_line.end()) {
        reader.error(*name_field, "duplicate plugin name '" + *text + "' (first at line " +
                                      std::to_string(it->second) + ")");
      } else {
        name = *text;
        first_line.emplace(name, line);
      }
    }
    std::shared_ptr<const Library> library;
    if (path_field) {
      if (std::optional<std::string> path = reader.string(*path_field)) {
        if (path->empty()) {
          reader.error(*path_field, "expected the path of a shared object");
        } else {
          std::string resolved = path->front() == '/' ? *path : config_dir + "/" + *path;
          std::string error;
          library = Library::open(resolved, error);
          if (!library) reader.error(*path_field, error);
        }
      }
    }
    if (name.empty()) continue;
    registry->add(name, library ? parserFor(name, library) : brokenParser());
  }
  return registry;
}

const bool registered = config::detail::setPluginListReader(readPluginList);

}  // namespace

}  // namespace sluice::plugins
