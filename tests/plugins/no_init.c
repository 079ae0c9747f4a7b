/* A shared object with the right ABI version and no entry point: sluice must say which
 * symbol is missing. */
#include "sluice_plugin.h"

SLUICE_PLUGIN_DEFINE_ABI_VERSION();
