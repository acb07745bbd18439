#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "measure.h"
#include "progress.h"

enum { BAR_WIDTH = 24 };

void sb_progress_init(sb_progress *p, int total, bool quiet) {
    memset(p, 0, sizeof *p);
    p->tty = isatty(STDERR_FILENO);
    p->quiet = quiet;
    p->total = total;
    p->t0 = sb_wall_seconds();
}

static void format_duration(char *buf, size_t n, double s) {
    if (s < 0 || s > 360000) {
        snprintf(buf, n, "--:--");
        return;
    }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

static void draw(sb_progress *p) {
    double now = sb_wall_seconds(), done = p->done + p->inner_fraction;
    double eta = done > 0 ? (now - p->t0) / done * (p->total - done) : -1;
    int filled = p->total ? (int)(BAR_WIDTH * done / p->total) : 0;
    char bar[BAR_WIDTH + 1], eta_text[16], rate[48] = "";
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = 0;
    format_duration(eta_text, sizeof eta_text, eta);
    if (p->inner_rate > 0) snprintf(rate, sizeof rate, " %.0f %s/s", p->inner_rate, p->unit);
    fprintf(stderr, "\r\033[K[%d/%d] %s ETA %s | %.60s %3.0f%%%s", p->done, p->total, bar, eta_text, p->current,
            100 * p->inner_fraction, rate);
    fflush(stderr);
    p->last_draw = now;
}

void sb_progress_run_start(sb_progress *p, const char *label) {
    snprintf(p->current, sizeof p->current, "%s", label);
    p->run_t0 = sb_wall_seconds();
    p->inner_fraction = p->inner_rate = 0;
    if (p->quiet) return;
    if (p->tty) draw(p);
    else fprintf(stderr, "slimbench: run %d/%d: %s\n", p->done + 1, p->total, label);
}

void sb_progress_run_end(sb_progress *p, const char *status) {
    p->done++;
    p->inner_fraction = 0;
    if (p->quiet) return;
    if (p->tty) {
        fprintf(stderr, "\r\033[K[%d/%d] %s: %s (%.1f s)\n", p->done, p->total, p->current, status,
                sb_wall_seconds() - p->run_t0);
        draw(p);
    } else {
        fprintf(stderr, "slimbench: run %d/%d %s (%.1f s)\n", p->done, p->total, status, sb_wall_seconds() - p->run_t0);
    }
}

void sb_progress_inner(void *user, double done, double total, const char *unit) {
    sb_progress *p = user;
    if (!p || total <= 0) return;
    double now = sb_wall_seconds();
    p->inner_fraction = done / total > 1 ? 1 : done / total;
    p->inner_rate = now > p->run_t0 ? done / (now - p->run_t0) : 0;
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "units");
    if (!p->quiet && p->tty && now - p->last_draw > 0.1) draw(p);
}

void sb_progress_finish(sb_progress *p) {
    if (p->quiet) return;
    if (p->tty) fprintf(stderr, "\r\033[K");
    fprintf(stderr, "slimbench: %d runs in %.1f s\n", p->done, sb_wall_seconds() - p->t0);
}
