// A plugin filter's YAML settings as the JSON text the plugin ABI hands to create():
// ${VAR} substituted, plain scalars typed the YAML 1.2 way (numbers, true/false, null),
// quoted ones kept as strings. Problems are config errors at their position; never throws.
#pragma once

#include <nlohmann/json.hpp>

#include "config/yaml_reader.h"

namespace sluice::plugins {

// False (after reporting through `reader`) when `field`'s value cannot be expressed.
bool settingsToJson(config::detail::Reader& reader, const config::detail::Field& field,
                    nlohmann::json& out);

}  // namespace sluice::plugins
