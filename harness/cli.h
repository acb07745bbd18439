/* cli.h - the sub-commands of the slimbench executable and the small
 * helpers they share for reading flags.  Each command is a function
 * taking the arguments after its name and returning the process exit
 * status (0 ok, 2 bad input, 1 internal failure). */
#ifndef SB_CLI_H
#define SB_CLI_H

#include <stdbool.h>

#include "error.h"

int sb_cmd_info(int argc, char **argv);
int sb_cmd_logits(int argc, char **argv);
int sb_cmd_tokenize(int argc, char **argv);
int sb_cmd_bench(int argc, char **argv);
int sb_cmd_bench_cuda(int argc, char **argv); /* bench --backend cuda[:N] */
int sb_cmd_report(int argc, char **argv);
int sb_cmd_compare(int argc, char **argv);
int sb_cmd_merge(int argc, char **argv);
int sb_cmd_run(int argc, char **argv);
int sb_cmd_eval(int argc, char **argv);
int sb_cmd_list(int argc, char **argv);
int sb_cmd_data(int argc, char **argv);
int sb_cmd_plot(int argc, char **argv);
int sb_cmd_train(int argc, char **argv);
int sb_cmd_train_vit(int argc, char **argv);
int sb_cmd_demo(int argc, char **argv);

/* Prints "slimbench: <message>" on stderr and returns err->code (or 1). */
int sb_cli_fail(const sb_err *err);

/* Flag parsing: flags are "--name value" or "--name" (switches). Returns the
 * value following --name, or NULL if the flag is absent. */
const char *sb_flag_value(int argc, char **argv, const char *name);
bool sb_flag_present(int argc, char **argv, const char *name);
/* Fails (exit 2 message) on any argument that is not one of the known flags:
 * `with_value` lists flags taking a value, `switches` those that do not; both
 * NULL-terminated. */
int sb_flags_check(int argc, char **argv, const char *const *with_value, const char *const *switches, sb_err *err);

#endif
