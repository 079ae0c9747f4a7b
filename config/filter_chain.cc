#include "config/filter_chain.h"

#include <map>

namespace sluice {
namespace {
std::map<std::string, FilterParser, std::less<>>& builtins() {
  static std::map<std::string, FilterParser, std::less<>> registry;
  return registry;
}
}  // namespace

bool registerFilter(const char* name, FilterParser parser) {
  builtins()[name] = std::move(parser);
  return true;
}

const FilterParser* findFilter(std::string_view name) {
  auto it = builtins().find(name);
  return it == builtins().end() ? nullptr : &it->second;
}

}  // namespace sluice

namespace sluice::config::detail {
namespace {

std::string knownFilters(const FilterRegistry* plugins) {
  std::string list;
  for (const auto& [name, parser] : builtins()) {
    if (!list.empty()) list += ", ";
    list += name;
  }
  if (plugins) {
    for (const std::string& name : plugins->names()) {
      if (!list.empty()) list += ", ";
      list += name + " (plugin)";
    }
  }
  return list.empty() ? "none" : list;
}

PluginListReader g_plugin_list_reader = nullptr;

}  // namespace

bool setPluginListReader(PluginListReader reader) {
  g_plugin_list_reader = reader;
  return true;
}

std::unique_ptr<FilterRegistry> readPluginList(Reader& reader, const Field& field,
                                               const std::string& config_dir) {
  if (!g_plugin_list_reader) {
    reader.error(field.key,
                 "'plugins' needs the plugin loader, which this program is built without");
    return nullptr;
  }
  return g_plugin_list_reader(reader, field, config_dir);
}

void readFilterList(Reader& reader, const Field& field, bool global, const std::string& config_dir,
                    const FilterRegistry* plugins, const Config* config,
                    std::vector<FilterEntry>& out) {
  std::vector<Field> items;
  if (!reader.list(field, items)) return;
  for (const Field& item : items) {
    if (!item.value.IsMap() || item.value.size() != 1) {
      reader.error(item, "expected one filter per list item, like '- request_id: {}'");
      continue;
    }
    auto it = item.value.begin();
    Field entry{it->first.Scalar(), it->first, it->second, true};
    FilterEntry fe;
    fe.name = entry.name;
    fe.mark = Reader::markOf(entry.key);
    bool duplicate = false;
    for (const FilterEntry& other : out) {
      if (other.name == fe.name) duplicate = true;
    }
    if (duplicate) {
      reader.error(entry.key, "filter '" + fe.name + "' appears twice in this list");
      continue;
    }
    const FilterParser* parser = plugins ? plugins->find(fe.name) : nullptr;
    if (!parser) parser = findFilter(fe.name);
    if (!parser) {
      reader.error(entry.key,
                   "unknown filter '" + fe.name + "' (known: " + knownFilters(plugins) + ")");
      continue;
    }
    YAML::Node settings = entry.value;
    if (settings.IsNull()) settings = YAML::Node(YAML::NodeType::Map);
    if (settings.IsMap() && settings["disabled"]) {
      YAML::Node flag = settings["disabled"];
      Field flag_field{"disabled", YAML::Node(), flag, true};
      std::optional<std::string> text = reader.string(flag_field);
      if (!text) continue;
      if (*text != "true" && *text != "false") {
        reader.error(flag, "expected true or false");
        continue;
      }
      if (*text == "true") {
        if (global) {
          reader.error(flag, "a global filter cannot be disabled; remove it instead");
        } else if (settings.size() != 1) {
          reader.error(entry.key, "a disabled filter takes no other settings");
        } else {
          fe.disabled = true;
          out.push_back(std::move(fe));
        }
        continue;
      }
      settings = YAML::Clone(settings);
      settings.remove("disabled");
    }
    Field settings_field{fe.name, entry.key, settings, true};
    size_t errors_before = reader.errorCount();
    FilterParseContext ctx{reader, settings_field, fe.name, config_dir, global, config};
    std::shared_ptr<const FilterFactory> factory = (*parser)(ctx);
    if (!factory || reader.errorCount() != errors_before) continue;
    fe.factory = std::move(factory);
    out.push_back(std::move(fe));
  }
}

void composeChain(Reader& reader, const std::vector<FilterEntry>& global,
                  const std::vector<FilterEntry>& route,
                  std::vector<std::shared_ptr<const FilterFactory>>& out) {
  out.clear();
  std::vector<bool> used(route.size(), false);
  for (const FilterEntry& g : global) {
    const FilterEntry* chosen = &g;
    for (size_t i = 0; i < route.size(); ++i) {
      if (route[i].name == g.name) {
        chosen = &route[i];
        used[i] = true;
      }
    }
    if (chosen->disabled || !chosen->factory) continue;
    out.push_back(chosen->factory);
  }
  for (size_t i = 0; i < route.size(); ++i) {
    if (used[i]) continue;
    if (route[i].disabled) {
      reader.error(route[i].mark, "filter '" + route[i].name +
                                      "' is not in the global filters, so there is nothing "
                                      "to disable");
      continue;
    }
    if (route[i].factory) out.push_back(route[i].factory);
  }
}

}  // namespace sluice::config::detail
