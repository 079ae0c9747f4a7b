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

// `plugins` (may be null) is searched before the built-in filters.
void readFilterList(Reader& reader, const Field& field, bool global, const std::string& config_dir,
                    const FilterRegistry* plugins, std::vector<FilterEntry>& out);

// Global filters in order — a route entry of the same name replaces (or, disabled,
// removes) the global one in place — then the route's other filters in order.
// Disabling a filter that is not global is an error reported through `reader`.
void composeChain(Reader& reader, const std::vector<FilterEntry>& global,
                  const std::vector<FilterEntry>& route,
                  std::vector<std::shared_ptr<const FilterFactory>>& out);

}  // namespace sluice::config::detail
