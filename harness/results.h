/* results.h - the results store: DIR/runs.jsonl, one record (record.h) per
 * line, append-only and crash-safe.
 *
 * Crash safety.  A record is serialised to one line and written with one
 * write(2) of the whole line (looping on short writes), then fsynced, so
 * after a kill -9 at any moment each record is either wholly in the file or
 * absent except for one torn last line.  sb_results_open detects that torn
 * line (no trailing newline, or a last line that is not valid JSON), warns
 * once on stderr with the file and byte offset, and truncates it away so
 * the next append starts on a clean line.  Invalid JSON anywhere else is an
 * SB_EINPUT error naming file:line: a record is never silently dropped.
 * A failed write (disk full) truncates back to the last complete line.
 *
 * One writer per file: sb_results_open takes an exclusive flock(2) on
 * runs.jsonl, and a second writer (another runner on the same DIR, or a
 * merge into it) fails with SB_EINPUT instead of interleaving or truncating
 * a line the other is writing.  Readers (sb_results_load) take no lock and
 * never modify the file; they skip a torn last line with a warning, since
 * a runner may be writing it at that moment.
 *
 * Resume semantics.  A run id may have several records: a failed run IS
 * retried on --resume, and its new record supersedes the old one.  The
 * record that stands for a run id (its "winner") is its last record with
 * status "ok", or, when it has none, its last record.  sb_results_has is
 * true when the winner has status "ok"; reports, compare and merge read
 * winners only (sb_results_winners). */
#ifndef SB_RESULTS_H
#define SB_RESULTS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum { SB_RUN_ID_LEN = 16 };

typedef struct sb_results sb_results;

/* Creates DIR if needed, locks and opens DIR/runs.jsonl for appending and
 * loads its records (repairing a torn last line, see above). */
int sb_results_open(const char *dir, sb_results **out, sb_err *err);
/* Read-only: PATH is a results directory or a .jsonl file itself. */
int sb_results_load(const char *path, sb_results **out, sb_err *err);
void sb_results_close(sb_results *r);

/* mkdir -p: creates every missing component of dir (a file in the way is an error). */
int sb_make_dirs(const char *dir, sb_err *err);

/* The file the records come from, for messages. */
const char *sb_results_path(const sb_results *r);

/* True when run_id has a record with status "ok" (it is not rerun on resume). */
bool sb_results_has(const sb_results *r, const char *run_id);

/* Appends one record (a JSON object with string fields "run_id" and
 * "status"), durably: returns only after fsync.  Keeps a copy in memory.
 * The store must come from sb_results_open. */
int sb_results_append(sb_results *r, const cJSON *record, sb_err *err);

/* Every loaded or appended record, in file order (superseded ones included). */
size_t sb_results_count(const sb_results *r);
const cJSON *sb_results_get(const sb_results *r, size_t i);

/* The winning record of run_id, or NULL. */
const cJSON *sb_results_find(const sb_results *r, const char *run_id);

/* The winner of every run id, sorted by run id: *out is a malloc'ed array
 * (free it) of pointers owned by r. */
int sb_results_winners(const sb_results *r, const cJSON ***out, size_t *n, sb_err *err);

/* Joins result sets: OUT_DIR/runs.jsonl (if present) and then each of
 * dirs[] in order are read; the winner of every run id (later inputs win
 * among equals, an ok record beats a failed one) is written sorted by run
 * id, to a temporary file that is fsynced and renamed over
 * OUT_DIR/runs.jsonl, so a crash leaves either the old or the new file.
 * *n_records and *n_runs (may be NULL) receive the counts read and written. */
int sb_results_merge(const char *out_dir, const char *const *dirs, int n_dirs, size_t *n_records, size_t *n_runs,
                     sb_err *err);

/* The run id of a configuration: FNV-1a 64 (hash.h) of its canonical form
 * (object keys sorted recursively, printed unformatted), as 16 lower-case
 * hex digits.  The same configuration always gets the same id whatever the
 * key order it was built in. */
int sb_run_id(const cJSON *config, char out[SB_RUN_ID_LEN + 1], sb_err *err);

/* Canonical form of a JSON value (keys sorted recursively): a malloc'ed
 * string, NULL when out of memory. */
char *sb_json_canonical(const cJSON *v);

/* ---- reading fields of a record (shared by report and compare) ----------- */

/* The value at a dotted path ("method.family", "memory.peak_rss_bytes"), or NULL. */
const cJSON *sb_record_at(const cJSON *record, const char *dotted_path);
/* A string field at a dotted path, or dflt. */
const char *sb_record_str(const cJSON *record, const char *dotted_path, const char *dflt);
bool sb_record_ok(const cJSON *record);
/* Human labels: the model ("llama-160m": the last component of model.path,
 * else model.hash), the method with its parameters ("gptq(bits=4,group=128)",
 * steps of a composition joined by " + "), the task with its parameters
 * when with_params.  Written into buf (truncated to n). */
void sb_record_model_label(const cJSON *record, char *buf, size_t n);
void sb_record_method_label(const cJSON *record, char *buf, size_t n);
void sb_record_task_label(const cJSON *record, bool with_params, char *buf, size_t n);

#endif
