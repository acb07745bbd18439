/* record.h - the results record: one JSON object per run, one line of
 * DIR/runs.jsonl.  Reports, plots and the regression gate are rebuilt from
 * these records alone, so a record carries everything needed to reproduce
 * and compare its run.  Schema version 1:
 *
 * {
 *   "schema": 1,
 *   "run_id": "9f2c4e1a0b3d5f67",   16 hex digits: FNV-1a 64 of the normalized run config
 *                                   (model hash, method name+params, task name+params,
 *                                   backend, seed), so the same run always gets the same id
 *   "sweep": "name",                 from the config file ("eval" for single runs)
 *   "status": "ok" | "failed",
 *   "error": "message"              (only when failed)
 *   "started": "2026-11-25T17:00:00Z", "finished": "...",
 *   "harness": {"version": "0.1.0", "git": "abc1234" | "unknown"},
 *   "host": {"cpu": "model name", "cores": 2, "blas": "openblas", "threads": 2},
 *   "model": {"path": "...", "hash": "...", "arch": "llama", "source": "hf"|"gguf",
 *             "params": 164000000},
 *   "method": {"name": "gptq", "family": "quantization",
 *              "paper": {"title": "...", "arxiv": "2210.17323"},
 *              "params": {...normalized...},
 *              "steps": [ {"name":..., "params":{...}}, ... ]   (compositions, applied in order)},
 *   "task": {"name": "perplexity", "protocol": "ppl:llamacpp:n_ctx=512:bos=1",
 *            "params": {...normalized...}},
 *   "backend": "cpu",
 *   "seed": 0,
 *   "metrics": {"ppl": {"value": 16.83, "stderr": 1.16, "direction": "lower", "unit": ""}, ...},
 *                                   direction: "lower" | "higher" | "none"; stderr null when none
 *   "details": {...task-specific...},
 *   "timings": {"load_s": 0.8, "method_s": 0.0, "task_s": 12.3, "task_cpu_s": 24.1},
 *   "memory": {"peak_rss_bytes": 1900000000, "weight_bytes": 1072168960,
 *              "bits_per_weight": 32.0, "kv_bytes": 0, "device_peak_bytes": null},
 *   "quant": "real" | "fake" | "none"
 * }
 *
 * Records are appended, flushed and fsynced one at a time (results.c). */
#ifndef SB_RECORD_H
#define SB_RECORD_H

#define SB_RECORD_SCHEMA 1

#endif
