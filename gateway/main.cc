// sluice's command line: run, validate, version. Everything else lives in the engine.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "config/config.h"
#include "gateway/server/log.h"
#include "gateway/server/server.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

namespace {

int printErrors(const sluice::config::LoadResult& result) {
  for (const auto& e : result.errors) std::fprintf(stderr, "%s\n", e.str().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice: an API gateway"};
  app.require_subcommand(1);
  std::string config_path;
  std::string log_level = "info";

  CLI::App* run = app.add_subcommand("run", "start the gateway (SIGTERM drains and stops)");
  run->add_option("config", config_path, "configuration file")->required();
  run->add_option("--log-level", log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));

  CLI::App* validate = app.add_subcommand("validate", "check a configuration file");
  validate->add_option("config", config_path, "configuration file")->required();

  app.add_subcommand("version", "print the version");

  CLI11_PARSE(app, argc, argv);

  if (app.got_subcommand("version")) {
    std::printf("sluice %s\n", SLUICE_VERSION);
    return 0;
  }
  auto result = sluice::config::loadFile(config_path);
  if (!result.config) return printErrors(result);
  if (app.got_subcommand("validate")) {
    std::printf("%s", sluice::config::summary(*result.config).c_str());
    return 0;
  }
  using sluice::log::Level;
  sluice::log::setLevel(log_level == "debug"   ? Level::kDebug
                        : log_level == "warn"  ? Level::kWarn
                        : log_level == "error" ? Level::kError
                                               : Level::kInfo);
  return sluice::runServer(result.config);
}
