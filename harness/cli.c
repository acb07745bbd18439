#include <stdio.h>
#include <string.h>

#include "cli.h"

int sb_cli_fail(const sb_err *err) {
    fprintf(stderr, "slimbench: %s\n", err->msg[0] ? err->msg : "failed");
    return err->code ? err->code : SB_EINTERNAL;
}

const char *sb_flag_value(int argc, char **argv, const char *name) {
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return NULL;
}

bool sb_flag_present(int argc, char **argv, const char *name) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return true;
    return false;
}

static bool in_list(const char *s, const char *const *list) {
    for (; list && *list; list++)
        if (strcmp(s, *list) == 0) return true;
    return false;
}

int sb_flags_check(int argc, char **argv, const char *const *with_value, const char *const *switches, sb_err *err) {
    for (int i = 0; i < argc; i++) {
        if (in_list(argv[i], with_value)) {
            if (i + 1 >= argc) return sb_err_set(err, SB_EINPUT, "flag %s needs a value", argv[i]);
            i++;
        } else if (!in_list(argv[i], switches)) {
            return sb_err_set(err, SB_EINPUT, "unknown argument '%s'", argv[i]);
        }
    }
    return SB_OK;
}
