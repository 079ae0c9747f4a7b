// Internal to the config loader: the `admin:` and `watch:` top-level keys, read apart
// from loader.cc so that the operator-facing settings stay in one small place. Never
// logs or echoes the admin token in an error message.
#pragma once

#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace sluice::config::detail {

// `admin: {address: 127.0.0.1:9901, token: "${ADMIN_TOKEN}"}`; `admin: {}` (or an empty
// `admin:`) enables it on the default address. `listeners` are already read: the admin
// address may not be one of theirs.
void readAdmin(Reader& reader, const Field& field, const std::vector<Listener>& listeners,
               Admin& out);

// `true` or `false`.
bool readBool(Reader& reader, const Field& field, bool& out);

}  // namespace sluice::config::detail
