/* runner_mpi.c - one sweep across MPI ranks (built with make MPI=1).
 *
 * Rank 0 owns the results store: it hands out runs one at a time, in
 * matrix order, to whichever rank asks, and appends each record it gets
 * back, so the store has one writer and the crash-safety of the serial
 * runner.  The other ranks load models and run; a rank keeps its model
 * and applied method between consecutive runs that share them. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner_internal.h"

enum { TAG_READY = 1, TAG_RECORD = 2, TAG_WORK = 3 };

static int send_next(int dest, int *next, const int *todo, int n_todo) {
    int index = *next < n_todo ? todo[(*next)++] : -1;
    MPI_Send(&index, 1, MPI_INT, dest, TAG_WORK, MPI_COMM_WORLD);
    return index;
}

/* A record arrives as its JSON text. */
static int receive_record(runner *r, MPI_Status *st, sb_runner_summary *sum, sb_err *err) {
    int len;
    MPI_Get_count(st, MPI_CHAR, &len);
    char *text = sb_malloc(err, (size_t)len + 1);
    if (!text) return SB_EINTERNAL;
    MPI_Recv(text, len, MPI_CHAR, st->MPI_SOURCE, TAG_RECORD, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    text[len] = 0;
    cJSON *rec = cJSON_Parse(text);
    free(text);
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(rec, "status");
    bool failed = !cJSON_IsString(status) || strcmp(status->valuestring, "ok") != 0;
    int rc = rec ? sb_runner_record(r, rec, failed, sum, err) : sb_err_set(err, SB_EINTERNAL, "rank %d sent a broken record", st->MPI_SOURCE);
    if (!rc && !sb_runner_progress(r)->quiet)
        fprintf(stderr, "slimbench: record from rank %d: %s\n", st->MPI_SOURCE, failed ? "failed" : "ok");
    cJSON_Delete(rec);
    return rc;
}

static int lead(runner *r, const sb_run_spec *runs, int n_runs, int ranks, sb_runner_summary *sum, sb_err *err) {
    int *todo = sb_malloc(err, sizeof(int) * (size_t)(n_runs + 1)), n_todo = 0, next = 0, rc = todo ? SB_OK : SB_EINTERNAL;
    for (int i = 0; !rc && i < n_runs; i++) {
        char id[SB_RUN_ID_LEN + 1];
        rc = sb_runner_id(r, &runs[i], id, err);
        if (!rc && sb_runner_done(r, id)) sum->skipped++;
        else if (!rc) todo[n_todo++] = i;
    }
    /* Even on error, keep answering so every worker is told to stop. */
    for (int active = ranks - 1; active > 0;) {
        MPI_Status st;
        MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
        if (st.MPI_TAG == TAG_RECORD) {
            int rrc = receive_record(r, &st, sum, err);
            rc = rc ? rc : rrc;
        } else {
            int ignored;
            MPI_Recv(&ignored, 1, MPI_INT, st.MPI_SOURCE, TAG_READY, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        }
        if (rc) next = n_todo; /* after an error hand out nothing more */
        if (send_next(st.MPI_SOURCE, &next, todo, n_todo) < 0) active--;
    }
    free(todo);
    return rc;
}

static void follow(runner *r, const sb_run_spec *runs) {
    int ready = 1;
    MPI_Send(&ready, 1, MPI_INT, 0, TAG_READY, MPI_COMM_WORLD);
    for (;;) {
        int index;
        MPI_Recv(&index, 1, MPI_INT, 0, TAG_WORK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (index < 0) return;
        char id[SB_RUN_ID_LEN + 1];
        sb_err err = {0};
        bool failed = true;
        cJSON *rec = NULL;
        if (sb_runner_id(r, &runs[index], id, &err) == SB_OK) rec = sb_runner_perform(r, &runs[index], id, &failed);
        char *text = rec ? cJSON_PrintUnformatted(rec) : NULL;
        /* an empty message would be a broken record; the leader reports it */
        MPI_Send(text ? text : "", text ? (int)strlen(text) : 0, MPI_CHAR, 0, TAG_RECORD, MPI_COMM_WORLD);
        free(text);
        cJSON_Delete(rec);
    }
}

int sb_runner_run_mpi(const sb_sweep *s, const sb_runner_opts *o, sb_runner_summary *sum, sb_err *err) {
    int rank, ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    memset(sum, 0, sizeof *sum);
    if (ranks < 2) return sb_runner_run(s, o, sum, err);
    sb_run_spec *runs = NULL;
    int n_runs = 0;
    runner *r = NULL;
    int rc = sb_sweep_matrix(s, o->shard_k, o->shard_n, &runs, &n_runs, err);
    if (!rc) rc = sb_runner_new(s, o, rank == 0, rank != 0, &r, err);
    sum->planned = n_runs;
    if (rank == 0) {
        if (!rc) sb_progress_init(sb_runner_progress(r), n_runs, true);
        int lrc = r ? lead(r, runs, n_runs, ranks, sum, err) : rc;
        rc = rc ? rc : lrc;
    } else if (!rc) {
        sb_progress_init(sb_runner_progress(r), n_runs, true);
        follow(r, runs);
    }
    sb_runner_free(r);
    free(runs);
    return rc;
}
