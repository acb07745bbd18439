/* backend.c - parsing backend names (backend.h). */
#include <stdlib.h>
#include <string.h>

#include "backend.h"

bool sb_backend_cuda_built(void) {
#ifdef SB_CUDA
    return true;
#else
    return false;
#endif
}

/* "cuda" [":" N] ["," "tf32"] */
static int parse_cuda(const char *text, sb_backend_choice *out, sb_err *err) {
    const char *p = text + 4;
    if (*p == ':') {
        char *end;
        long n = strtol(p + 1, &end, 10);
        if (end == p + 1 || n < 0 || n > 1023)
            return sb_err_set(err, SB_EINPUT, "backend '%s': expected cuda:N with a device number N >= 0", text);
        out->device = (int)n;
        p = end;
    }
    if (strcmp(p, ",tf32") == 0) {
        out->tf32 = true;
        p += 5;
    }
    if (*p)
        return sb_err_set(err, SB_EINPUT, "backend '%s': expected cuda, cuda:N or cuda:N,tf32", text);
    if (!sb_backend_cuda_built())
        return sb_err_set(err, SB_EINPUT,
                          "backend '%s': this slimbench was built without CUDA (rebuild with make CUDA=1 where nvcc is installed)",
                          text);
    return SB_OK;
}

int sb_backend_parse(const char *text, sb_backend_choice *out, sb_err *err) {
    *out = (sb_backend_choice){SB_BACKEND_CPU, 0, false};
    if (strcmp(text, "cpu") == 0) return SB_OK;
    if (strncmp(text, "cuda", 4) == 0) {
        out->kind = SB_BACKEND_CUDA;
        return parse_cuda(text, out, err);
    }
    return sb_err_set(err, SB_EINPUT, "unknown backend '%s' (known: cpu, cuda[:N][,tf32])", text);
}
