/* A plugin built for another ABI version: sluice must refuse it without calling it
 * (sluice_plugin_init aborts, so a host that called it first would crash the test). */
#include <stdlib.h>

#include "sluice_plugin.h"

SLUICE_PLUGIN_EXPORT const uint32_t sluice_plugin_abi_version = 99;

const sluice_plugin_v1* sluice_plugin_init(uint32_t host_abi_version, const sluice_host_v1* host) {
  (void)host_abi_version;
  (void)host;
  abort();
}
