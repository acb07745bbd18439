/* temporary until the commands land */
#include "cli.h"
int sb_cmd_info(int argc, char **argv) { (void)argc; (void)argv; return 1; }
int sb_cmd_logits(int argc, char **argv) { (void)argc; (void)argv; return 1; }
int sb_cmd_tokenize(int argc, char **argv) { (void)argc; (void)argv; return 1; }
int sb_cmd_bench(int argc, char **argv) { (void)argc; (void)argv; return 1; }
