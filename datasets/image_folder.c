/* image_folder.c - a folder with one sub-folder per class (the torchvision
 * ImageFolder layout): root/<class>/<file>.png|.ppm|.pgm.
 *
 * Class names sorted bytewise give labels 0..n-1 and files are read in
 * sorted order, so the same folder gives the same set on every machine
 * (readdir's order is the file system's, not ours). Hidden entries and
 * files with other extensions are skipped; an unreadable image is an error
 * naming it, never silently dropped, since a quietly smaller test set
 * changes the numbers. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "image_internal.h"

typedef struct name_list {
    char **names;
    int n, cap;
} name_list;

static void names_free(name_list *l) {
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int is_image_name(const char *name) {
    static const char *const ext[] = {".png", ".ppm", ".pgm", ".pnm"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (n > 4 && strcasecmp(name + n - 4, ext[i]) == 0) return 1;
    return 0;
}

/* The sorted non-hidden entries of dir that are folders (want_dirs) or image files. */
static int list_dir(const char *dir, int want_dirs, name_list *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) return sb_err_set(err, SB_EINPUT, "%s: cannot open folder", dir);
    int rc = SB_OK;
    struct dirent *e;
    while (rc == SB_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *path = join(dir, e->d_name);
        struct stat st;
        int keep = path && stat(path, &st) == 0 &&
                   (want_dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode) && is_image_name(e->d_name));
        free(path);
        if (!keep) continue;
        if (out->n == out->cap) {
            int cap = out->cap ? out->cap * 2 : 16;
            char **bigger = realloc(out->names, (size_t)cap * sizeof *bigger);
            if (!bigger) { rc = sb_err_set(err, SB_EINTERNAL, "out of memory"); break; }
            out->names = bigger, out->cap = cap;
        }
        out->names[out->n] = strdup(e->d_name);
        if (!out->names[out->n]) rc = sb_err_set(err, SB_EINTERNAL, "out of memory");
        else out->n++;
    }
    closedir(d);
    if (rc == SB_OK && out->n > 1) qsort(out->names, (size_t)out->n, sizeof *out->names, cmp_names);
    if (rc != SB_OK) names_free(out);
    return rc;
}

static int load_class(const char *class_dir, int label, int limit, sb_image_set *set, sb_err *err) {
    name_list files;
    int rc = list_dir(class_dir, 0, &files, err);
    for (int i = 0; rc == SB_OK && i < files.n && (limit <= 0 || set->n_images < limit); i++) {
        char *path = join(class_dir, files.names[i]);
        sb_image img;
        if (!path) rc = sb_err_set(err, SB_EINTERNAL, "out of memory");
        else rc = sb_image_read(path, &img, err);
        if (rc == SB_OK) rc = sb_image_set_push(set, &img, label, err);
        free(path);
    }
    names_free(&files);
    return rc;
}

int sb_image_load_folder(const char *dir, int limit, sb_image_set *set, sb_err *err) {
    name_list classes;
    int rc = list_dir(dir, 1, &classes, err);
    if (rc == SB_OK && classes.n == 0)
        rc = sb_err_set(err, SB_EINPUT, "%s: no class sub-folders (want %s/<class>/<image>.png)", dir, dir);
    if (rc == SB_OK) rc = sb_image_set_classes(set, classes.n, (const char *const *)classes.names, err);
    for (int c = 0; rc == SB_OK && c < classes.n && (limit <= 0 || set->n_images < limit); c++) {
        char *class_dir = join(dir, classes.names[c]);
        rc = class_dir ? load_class(class_dir, c, limit, set, err) : sb_err_set(err, SB_EINTERNAL, "out of memory");
        free(class_dir);
    }
    names_free(&classes);
    return rc;
}
