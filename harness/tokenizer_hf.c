#include "tokenizer_internal.h"
int sb_tokenizer_load_hf(const char *path, sb_tokenizer **out, sb_err *err) { (void)path; *out = NULL; return sb_err_set(err, SB_EINPUT, "todo"); }
