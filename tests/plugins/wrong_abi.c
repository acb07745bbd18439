/* wrong_abi.c - a plugin built against some other version of plugin.h:
 * slimbench must refuse it with a clear message instead of misreading it. */
#include "plugin.h"

static const sb_plugin plugin = {.abi = SB_PLUGIN_ABI + 100};

const sb_plugin *sb_plugin_entry(void) { return &plugin; }
