// Internal to the config loader: reads `filters:` lists (global and per route) through
// the filter registry, and composes each route's chain from the global one.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/yaml_reader.h"
#include "filters/filter.h"

namespace sluice::config::detail {

struct FilterEntry {
  std::string name;
  bool disabled = false;  // `- name: {disabled: true}` in a route: switch a global filter off
  std::shared_ptr<const FilterFactory> factory;  // null when disabled
  Mark mark;
};

// `plugins` (may be null) is searched before the built-in filters. `config` is the
// config being loaded (its top-level settings read), passed on to filter parsers.
void readFilterList(Reader& reader, const Field& field, bool global, const std::string& config_dir,
                    const FilterRegistry* plugins, const Config* config,
                    std::vector<FilterEntry>& out);

// The top-level `plugins:` list, read before any filter list: loads each plugin and
// returns the registry of their filter names for this load (null when there is nothing
// to register). plugins/ sets the reader when it is linked into the program (it
// registers itself, like a filter); without it, `plugins:` is an error.
using PluginListReader = std::unique_ptr<FilterRegistry> (*)(Reader& reader, const Field& field,
                                                             const std::string& config_dir);
bool setPluginListReader(PluginListReader reader);
std::unique_ptr<FilterRegistry> readPluginList(Reader& reader, const Field& field,
                                               const std::string& config_dir);

// Global filters in order — a route entry of the same name replaces (or, disabled,
// removes) the global one in place — then the route's other filters in order.
// Disabling a filter that is not global is an error reported through `reader`.
void composeChain(Reader& reader, const std::vector<FilterEntry>& global,
                  const std::vector<FilterEntry>& route,
                  std::vector<std::shared_ptr<const FilterFactory>>& out);

}  // namespace sluice::config::detail
