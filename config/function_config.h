// Internal to the config loader: the top-level `functions:` and `function_pricing:`
// sections, and the `stage:` key of listeners and routes. Never puts a secret access
// key or session token in an error message.
#pragma once

#include <map>
#include <string>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace sluice::config::detail {

// `functions: {NAME: {runtime, ...}}`. Relative `working_dir` and `tls.ca` paths are
// taken from `config_dir`; lambda endpoints are resolved here, on the loading thread,
// so that a worker never waits for DNS. Missing lambda credentials are taken from
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN.
void readFunctions(Reader& reader, const Field& field, const std::string& config_dir,
                   std::map<std::string, Function>& out);

// `function_pricing: {per_million_requests, per_gb_second}`.
void readFunctionPricing(Reader& reader, const Field& field, FunctionPricing& out);

// `stage: NAME` or `stage: {name: NAME, variables: {KEY: VALUE}}`.
void readStage(Reader& reader, const Field& field, Stage& out);

}  // namespace sluice::config::detail
