/* version.h - what the records say built them. */
#ifndef SB_VERSION_H
#define SB_VERSION_H

#define SB_VERSION "0.1.0"

/* Short git commit the binary was built from, or "unknown". */
const char *sb_git_commit(void);

#endif
