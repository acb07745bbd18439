/* test_model_errors.c - bad checkpoints give SB_EINPUT and a message that
 * names the file and the reason; nothing crashes (run under SANITIZE=1).
 *
 * A tiny valid Llama folder is written from scratch into a temp dir; each
 * case breaks one thing in it (the safetensors header, the data, the
 * config) and loads it again. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "forward.h"

enum { D = 16, FF = 32, V = 40, HEADS = 2, LAYERS = 1 };

typedef struct {
    char name[96];
    const char *dtype;      /* as written in the header */
    int64_t rows, cols;     /* cols 0: a vector */
    int64_t extra_bytes;    /* added to data_offsets' end (to corrupt it) */
} tensor_spec;

static int n_specs(const tensor_spec *s) {
    int n = 0;
    while (s[n].name[0]) n++;
    return n;
}

static void llama_specs(tensor_spec *s) {
    int n = 0;
    s[n++] = (tensor_spec){"model.embed_tokens.weight", "F32", V, D, 0};
    s[n++] = (tensor_spec){"model.norm.weight", "F32", D, 0, 0};
    s[n++] = (tensor_spec){"lm_head.weight", "F32", V, D, 0};
    const char *mats[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"};
    for (int i = 0; i < 4; i++) {
        s[n] = (tensor_spec){"", "F32", D, D, 0};
        snprintf(s[n++].name, 96, "model.layers.0.%s.weight", mats[i]);
    }
    s[n++] = (tensor_spec){"model.layers.0.mlp.gate_proj.weight", "F32", FF, D, 0};
    s[n++] = (tensor_spec){"model.layers.0.mlp.up_proj.weight", "F32", FF, D, 0};
    s[n++] = (tensor_spec){"model.layers.0.mlp.down_proj.weight", "F32", D, FF, 0};
    s[n++] = (tensor_spec){"model.layers.0.input_layernorm.weight", "F32", D, 0, 0};
    s[n++] = (tensor_spec){"model.layers.0.post_attention_layernorm.weight", "F32", D, 0, 0};
    s[n].name[0] = 0;
}

/* Writes model.safetensors for specs; header_override replaces the JSON
 * header text; truncate_at > 0 cuts the file to that many bytes. */
static void write_safetensors_file(const char *dir, const char *file, const tensor_spec *s, const char *header_override,
                                   long truncate_at) {
    cJSON *h = cJSON_CreateObject();
    int64_t off = 0;
    for (int i = 0; i < n_specs(s); i++) {
        cJSON *e = cJSON_AddObjectToObject(h, s[i].name);
        cJSON_AddStringToObject(e, "dtype", s[i].dtype);
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)s[i].rows));
        if (s[i].cols) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)s[i].cols));
        int64_t bytes = 4 * s[i].rows * (s[i].cols ? s[i].cols : 1);
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + bytes + s[i].extra_bytes)));
        off += bytes;
    }
    char *text = header_override ? strdup(header_override) : cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    uint64_t hlen = strlen(text);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "wb");
    fwrite(&hlen, 8, 1, f);
    fwrite(text, 1, hlen, f);
    for (int64_t i = 0; i < off / 4; i++) {
        float v = (float)((i * 37) % 101 - 50) / 200.0f;
        fwrite(&v, 4, 1, f);
    }
    fclose(f);
    free(text);
    if (truncate_at > 0 && truncate(path, truncate_at) != 0) perror("truncate");
}

static void write_safetensors(const char *dir, const tensor_spec *s, const char *header_override, long truncate_at) {
    write_safetensors_file(dir, "model.safetensors", s, header_override, truncate_at);
}

/* A two-shard checkpoint: tensors [0, split) in shard 1, the rest in shard 2,
 * and model.safetensors.index.json naming each tensor's shard (plus, if
 * ghost is non-NULL, a tensor that no shard holds). */
static void write_sharded(const char *dir, const tensor_spec *s, int split, const char *ghost) {
    tensor_spec first[16], second[16];
    int n = n_specs(s);
    if (split < 0 || split > n || n > 15) return;
    memcpy(first, s, sizeof(tensor_spec) * (size_t)split);
    first[split].name[0] = 0;
    memcpy(second, s + split, sizeof(tensor_spec) * (size_t)(n - split));
    second[n - split].name[0] = 0;
    write_safetensors_file(dir, "model-00001-of-00002.safetensors", first, NULL, 0);
    write_safetensors_file(dir, "model-00002-of-00002.safetensors", second, NULL, 0);
    cJSON *index = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(index, "weight_map");
    for (int i = 0; i < n; i++)
        cJSON_AddStringToObject(map, s[i].name, i < split ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
    if (ghost) cJSON_AddStringToObject(map, ghost, "model-00002-of-00002.safetensors");
    char *text = cJSON_Print(index), path[512];
    cJSON_Delete(index);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    free(text);
}

static void remove_shards(const char *dir) {
    const char *files[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"};
    for (int i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
}

static void write_config(const char *dir, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static const char *good_config =
    "{\"model_type\": \"llama\", \"vocab_size\": 40, \"hidden_size\": 16, \"num_hidden_layers\": 1,"
    " \"num_attention_heads\": 2, \"num_key_value_heads\": 2, \"intermediate_size\": 32, \"rms_norm_eps\": 1e-5}";

/* Loads dir and expects success (want == NULL) or SB_EINPUT with a message
 * containing every string in want (NULL-terminated). */
static void expect_load(const char *name, const char *dir, const char *const *want) {
    test_begin(name);
    sb_model *m = NULL;
    sb_err err = {0};
    int rc = sb_model_load(dir, &m, &err);
    if (!want) {
        test_expect(rc == SB_OK, "valid model failed to load: %s", err.msg);
    } else {
        test_expect(rc == SB_EINPUT, "expected a bad-input error, got status %d (%s)", rc, err.msg);
        for (int i = 0; want[i]; i++) test_expect(strstr(err.msg, want[i]) != NULL, "message '%s' lacks '%s'", err.msg, want[i]);
        test_expect(strchr(err.msg, '\n') == NULL, "message is not one line");
    }
    if (m && !want) {
        sb_session *s;
        float logits[V];
        int32_t tok[3] = {1, 2, 3};
        test_expect(sb_session_new(m, NULL, 1, 3, 3, &s, &err) == SB_OK && sb_session_forward(s, tok, 3, 2, logits, &err) == SB_OK,
                    "%s", err.msg);
        int32_t bad = V;
        sb_session_reset(s);
        test_expect(sb_session_forward(s, &bad, 1, 0, logits, &err) == SB_EINPUT, "out-of-range token accepted");
        sb_session_free(s);
    }
    sb_model_free(m);
    test_end();
}

int main(void) {
    char dir[] = "/tmp/sb_model_errors_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char st_path[600];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    tensor_spec specs[16], bad[16];
    llama_specs(specs);

    write_config(dir, good_config);
    write_safetensors(dir, specs, NULL, 0);
    expect_load("load_valid_tiny_llama", dir, NULL);

    write_safetensors(dir, specs, NULL, 5);
    expect_load("safetensors_truncated_length", dir, (const char *[]){st_path, "truncated", NULL});
    write_safetensors(dir, specs, NULL, 40);
    expect_load("safetensors_truncated_header", dir, (const char *[]){st_path, "header length", NULL});
    write_safetensors(dir, specs, "{\"model.norm.weight\": {\"dtype\": ", 0);
    expect_load("safetensors_corrupted_header", dir, (const char *[]){st_path, "JSON", NULL});
    write_safetensors(dir, specs, NULL, 2000);
    expect_load("safetensors_truncated_data", dir, (const char *[]){st_path, "outside", NULL});

    memcpy(bad, specs, sizeof bad);
    bad[1].extra_bytes = 1 << 20;
    write_safetensors(dir, bad, NULL, 0);
    expect_load("safetensors_offsets_past_end", dir, (const char *[]){st_path, "model.norm.weight", "outside", NULL});
    memcpy(bad, specs, sizeof bad);
    bad[2].extra_bytes = -4;
    write_safetensors(dir, bad, NULL, 0);
    expect_load("safetensors_size_mismatch", dir, (const char *[]){st_path, "lm_head.weight", "data bytes", NULL});
    memcpy(bad, specs, sizeof bad);
    bad[3].dtype = "F7";
    write_safetensors(dir, bad, NULL, 0);
    expect_load("safetensors_unknown_dtype", dir, (const char *[]){st_path, "unknown dtype 'F7'", NULL});
    memcpy(bad, specs, sizeof bad);
    bad[4].dtype = "I32";
    write_safetensors(dir, bad, NULL, 0);
    expect_load("safetensors_wrong_dtype", dir, (const char *[]){st_path, "k_proj", "cannot be decoded", NULL});
    memcpy(bad, specs, sizeof bad);
    bad[5] = bad[11]; /* drops v_proj */
    bad[11].name[0] = 0;
    write_safetensors(dir, bad, NULL, 0);
    expect_load("safetensors_missing_tensor", dir, (const char *[]){"missing tensor", "v_proj", NULL});
    memcpy(bad, specs, sizeof bad);
    bad[7].cols = FF;
    write_safetensors(dir, bad, NULL, 0);
    expect_load("safetensors_shape_mismatch", dir, (const char *[]){st_path, "gate_proj", "expected [32, 16]", NULL});

    write_safetensors(dir, specs, NULL, 0);
    char cfg_path[600];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    write_config(dir, "{\"model_type\": \"llama\", \"vocab_size\": 40,");
    expect_load("config_malformed_json", dir, (const char *[]){cfg_path, "malformed JSON", NULL});
    write_config(dir, "{\"model_type\": \"llama\", \"vocab_size\": 40}");
    expect_load("config_missing_key", dir, (const char *[]){cfg_path, "hidden_size", NULL});
    write_config(dir, "{\"model_type\": \"llama\", \"vocab_size\": 40, \"hidden_size\": \"16\"}");
    expect_load("config_wrong_type", dir, (const char *[]){cfg_path, "hidden_size", "integer", NULL});
    write_config(dir, "{\"model_type\": \"bert\"}");
    expect_load("config_unsupported_arch", dir, (const char *[]){cfg_path, "bert", NULL});
    write_config(dir, "{\"model_type\": \"llama\", \"vocab_size\": 40, \"hidden_size\": 16, \"num_hidden_layers\": 1,"
                      " \"num_attention_heads\": 3, \"intermediate_size\": 32}");
    expect_load("config_impossible_heads", dir, (const char *[]){"impossible", NULL});

    write_config(dir, good_config);
    unlink(st_path);
    expect_load("missing_weights_file", dir, (const char *[]){dir, "no model.safetensors", NULL});

    write_sharded(dir, specs, 5, NULL);
    expect_load("sharded_checkpoint_loads", dir, NULL);
    write_sharded(dir, specs, 5, "model.layers.0.extra.weight");
    expect_load("sharded_index_names_missing_tensor", dir,
                (const char *[]){"model.safetensors.index.json", "model.layers.0.extra.weight", NULL});
    remove_shards(dir);
    unlink(cfg_path);
    rmdir(dir);
    return test_status();
}
