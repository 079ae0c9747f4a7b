// The bridge between a plugin (sluice_plugin.h) and the filter chain: a FilterFactory per
// configured use of a plugin, a pooled per-request Filter that calls the plugin, and the
// host function table the plugin calls back. No C++ type ever crosses into the plugin.
#pragma once

#include <memory>
#include <string>

#include "filters/filter.h"
#include "plugins/loader.h"
#include "plugins/sluice_plugin.h"

namespace sluice::plugins {

// The table given to every plugin's sluice_plugin_init.
const sluice_host_v1* hostApi();

// Takes ownership of `instance` (made by the library's create): destroyed with the
// factory, which keeps the library loaded until then.
std::shared_ptr<const FilterFactory> makeFilterFactory(std::shared_ptr<const Library> library,
                                                       void* instance);

}  // namespace sluice::plugins
