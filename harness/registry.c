/* registry.c - the tables of everything slimbench can run.
 *
 * A new built-in method or task is one file in methods/ or tasks/ and one
 * line in a table below. Plugins loaded at run time are appended to the
 * `loaded` lists; that is the only mutable state here. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

/* ---- built-in methods ---- */
extern const sb_method sb_method_dense;
extern const sb_method sb_method_rtn;
extern const sb_method sb_method_gptq;
extern const sb_method sb_method_lorc;
extern const sb_method sb_method_eora;
extern const sb_method sb_method_sleb;
extern const sb_method sb_method_magnitude;
extern const sb_method sb_method_slim_llm;
extern const sb_method sb_method_pyramid_drop;
extern const sb_method sb_method_zero_tprune;
extern const sb_method sb_method_pb_llm;
extern const sb_method sb_method_slicegpt;

static const sb_method *const builtin_methods[] = {
    &sb_method_dense,
    &sb_method_rtn,
    &sb_method_gptq,
    &sb_method_lorc,
    &sb_method_eora,
    &sb_method_sleb,
    &sb_method_magnitude,
    &sb_method_slim_llm,
    &sb_method_pyramid_drop,
    &sb_method_zero_tprune,
    &sb_method_pb_llm,
    &sb_method_slicegpt,
};

/* ---- built-in tasks ---- */
extern const sb_task sb_task_speed;
extern const sb_task sb_task_perplexity;
extern const sb_task sb_task_kld;
extern const sb_task sb_task_mc;
extern const sb_task sb_task_image_classification;
extern const sb_task sb_task_image_speed;
extern const sb_task sb_task_image_quality;
static const sb_task *const builtin_tasks[] = {
    &sb_task_speed,
    &sb_task_perplexity,
    &sb_task_kld,
    &sb_task_mc,
    &sb_task_image_classification,
    &sb_task_image_speed,
    &sb_task_image_quality,
};

const sb_named sb_registry_archs[] = {
    {"llama", "Llama 2/3, Mistral, TinyLlama, SmolLM (HF llama/mistral; GGUF llama)"},
    {"qwen2", "Qwen2 / Qwen2.5 (HF qwen2; GGUF qwen2)"},
    {"gemma3", "Gemma 3 text (HF gemma3_text/gemma3; GGUF gemma3)"},
    {"opt", "OPT (HF opt, pre-norm variants)"},
    {"gpt2", "GPT-2 (HF gpt2)"},
    {"phi", "Phi-2 (HF phi)"},
    {"vit", "ViT image classifiers (HF ViTForImageClassification)"},
    {"deit", "DeiT image classifiers (HF DeiTForImageClassification)"},
    {NULL, NULL},
};

const sb_named sb_registry_formats[] = {
    {"f32", "32-bit float, used in place from the file when it is f32"},
    {"f16", "IEEE half, decoded tile by tile inside the product"},
    {"bf16", "bfloat16, decoded tile by tile inside the product"},
    {"qint", "grouped integer codes of 1-8 bits (per group widths allowed), bit-packed, f16 scales/zeros; fused AVX2 product"},
    {"csr", "unstructured sparsity: f32 values, 16/32-bit column indices, 32-bit row pointers; fused sparse dot product"},
    {"n:m", "N:M semi-structured sparsity: n f32 values per group of m with packed in-group positions; fused AVX2 2:4 product"},
    {"pbllm", "partial binarization (PB-LLM): sign + mask bitmaps, f16 alpha/mu per group, 8-bit salient codes; fused AVX2 product"},
    {"lowrank", "add-on W_c + B*A over any other format (f32 factors), two thin products after W_c's own"},
    {NULL, NULL},
};

const sb_named sb_registry_backends[] = {
    {"cpu", "CBLAS GEMM inside one thread pool, AVX2 kernels for the rest"},
#ifdef SB_CUDA
    {"cuda", "cuda[:N][,tf32]: cuBLAS GEMM (f32/TF32, bf16/f16 with f32 accumulation), fused causal attention (tensor cores for 16-bit models), GPTQ on the device, qint/csr/n:m/low-rank kernels"},
#else
    {"cuda", "not in this build (make CUDA=1 where nvcc is installed)"},
#endif
    {NULL, NULL},
};

/* ---- plugins loaded at run time ---- */
enum { MAX_LOADED = 256 };
static const sb_method *loaded_methods[MAX_LOADED];
static int n_loaded_methods;
static const sb_task *loaded_tasks[MAX_LOADED];
static int n_loaded_tasks;

static int n_builtin_methods(void) { return (int)(sizeof builtin_methods / sizeof builtin_methods[0]); }
static int n_builtin_tasks(void) {
    int n = 0;
    for (size_t i = 0; i < sizeof builtin_tasks / sizeof builtin_tasks[0]; i++) n += builtin_tasks[i] != NULL;
    return n;
}

int sb_registry_n_methods(void) { return n_builtin_methods() + n_loaded_methods; }

const sb_method *sb_registry_method_at(int i) {
    if (i < 0) return NULL;
    if (i < n_builtin_methods()) return builtin_methods[i];
    i -= n_builtin_methods();
    return i < n_loaded_methods ? loaded_methods[i] : NULL;
}

const sb_method *sb_registry_method(const char *name) {
    for (int i = 0; i < sb_registry_n_methods(); i++)
        if (strcmp(sb_registry_method_at(i)->name, name) == 0) return sb_registry_method_at(i);
    return NULL;
}

int sb_registry_n_tasks(void) { return n_builtin_tasks() + n_loaded_tasks; }

const sb_task *sb_registry_task_at(int i) {
    if (i < 0) return NULL;
    for (size_t k = 0; k < sizeof builtin_tasks / sizeof builtin_tasks[0]; k++)
        if (builtin_tasks[k] && i-- == 0) return builtin_tasks[k];
    return i < n_loaded_tasks ? loaded_tasks[i] : NULL;
}

const sb_task *sb_registry_task(const char *name) {
    for (int i = 0; i < sb_registry_n_tasks(); i++)
        if (strcmp(sb_registry_task_at(i)->name, name) == 0) return sb_registry_task_at(i);
    return NULL;
}

static int check_method(const char *path, const sb_method *m, sb_err *err) {
    if (!m || !m->name || !m->apply || m->abi != SB_PLUGIN_ABI || (m->n_params && !m->params))
        return sb_err_set(err, SB_EINPUT, "%s: a method entry is incomplete or has ABI %d (expected %d)", path,
                          m ? m->abi : -1, SB_PLUGIN_ABI);
    if (sb_registry_method(m->name))
        return sb_err_set(err, SB_EINPUT, "%s: method '%s' is already registered", path, m->name);
    return SB_OK;
}

static int check_task(const char *path, const sb_task *t, sb_err *err) {
    if (!t || !t->name || !t->run || t->abi != SB_PLUGIN_ABI || (t->n_params && !t->params))
        return sb_err_set(err, SB_EINPUT, "%s: a task entry is incomplete or has ABI %d (expected %d)", path,
                          t ? t->abi : -1, SB_PLUGIN_ABI);
    if (sb_registry_task(t->name)) return sb_err_set(err, SB_EINPUT, "%s: task '%s' is already registered", path, t->name);
    return SB_OK;
}

int sb_registry_load_plugin(const char *path, sb_err *err) {
    /* dlopen searches the library path for a bare name; a plugin is a file */
    char file[4096];
    snprintf(file, sizeof file, "%s%s", strchr(path, '/') ? "" : "./", path);
    void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!h) return sb_err_set(err, SB_EINPUT, "%s: cannot load plugin: %s", path, dlerror());
    sb_plugin_entry_fn entry;
    *(void **)&entry = dlsym(h, SB_PLUGIN_ENTRY); /* POSIX's way to get a function from dlsym */
    const sb_plugin *p = entry ? entry() : NULL;
    int rc = SB_OK;
    if (!entry) rc = sb_err_set(err, SB_EINPUT, "%s: not a slimbench plugin (no %s symbol)", path, SB_PLUGIN_ENTRY);
    else if (!p || p->abi != SB_PLUGIN_ABI)
        rc = sb_err_set(err, SB_EINPUT, "%s: plugin ABI version %d, this slimbench needs %d (rebuild it against harness/plugin.h)",
                        path, p ? p->abi : -1, SB_PLUGIN_ABI);
    else if (p->n_methods < 0 || p->n_tasks < 0 || n_loaded_methods + p->n_methods > MAX_LOADED ||
             n_loaded_tasks + p->n_tasks > MAX_LOADED)
        rc = sb_err_set(err, SB_EINPUT, "%s: impossible method/task counts", path);
    for (int i = 0; !rc && i < p->n_methods; i++) rc = check_method(path, p->methods[i], err);
    for (int i = 0; !rc && i < p->n_tasks; i++) rc = check_task(path, p->tasks[i], err);
    if (rc) {
        dlclose(h);
        return rc;
    }
    for (int i = 0; i < p->n_methods; i++) loaded_methods[n_loaded_methods++] = p->methods[i];
    for (int i = 0; i < p->n_tasks; i++) loaded_tasks[n_loaded_tasks++] = p->tasks[i];
    return SB_OK; /* the handle stays open for the life of the process */
}
