#include "version.h"

#ifndef SB_GIT_COMMIT
#define SB_GIT_COMMIT "unknown"
#endif

const char *sb_git_commit(void) { return SB_GIT_COMMIT; }
