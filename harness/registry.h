/* registry.h - every method, task, architecture, weight format and backend
 * slimbench knows: the built-in static tables plus plugins loaded from
 * shared objects (--plugin PATH.so). */
#ifndef SB_REGISTRY_H
#define SB_REGISTRY_H

#include "plugin.h"

int sb_registry_n_methods(void);
const sb_method *sb_registry_method_at(int i);
const sb_method *sb_registry_method(const char *name); /* NULL if unknown */

int sb_registry_n_tasks(void);
const sb_task *sb_registry_task_at(int i);
const sb_task *sb_registry_task(const char *name);

/* Loads a plugin .so and adds its methods and tasks; refuses an ABI other
 * than SB_PLUGIN_ABI and names that are already taken. */
int sb_registry_load_plugin(const char *path, sb_err *err);

/* Names for `slimbench list`: NULL-terminated. */
typedef struct sb_named {
    const char *name;
    const char *summary;
} sb_named;
extern const sb_named sb_registry_archs[];
extern const sb_named sb_registry_formats[];
extern const sb_named sb_registry_backends[];

#endif
