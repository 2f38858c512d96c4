/* src/infer/agents_yaml.c — YAML (libyaml document API) to cJSON.
 *
 * yaml_parser_load builds the node graph of the first document (aliases
 * resolved to their anchored nodes); a recursive walk copies it into cJSON.
 * Plain scalars get YAML 1.2 core types so that `max_turns: 6` is a number
 * and `seed: "6"` a string, as in JSON.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "agents_yaml.h"
#include "err.h"

#define YAML_DEPTH_MAX 64
/* Aliases can repeat a subtree many times over (or refer to themselves):
 * the copy stops at this many nodes. */
#define YAML_NODES_MAX 100000

static int is_null_word(const char *s) {
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

static int bool_word(const char *s) {
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return 1;
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return 0;
    return -1;
}

/* A finite decimal number spelled the JSON way or with a leading '+'. */
static int number_word(const char *s, double *out) {
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (!(*p >= '0' && *p <= '9') && !(*p == '.' && p[1] >= '0' && p[1] <= '9')) return 0;
    for (const char *q = p; *q; q++)
        if (!strchr("0123456789.eE+-", *q)) return 0;
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static cJSON *scalar(const yaml_node_t *n) {
    const char *s = (const char *)n->data.scalar.value;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        double v;
        int b = bool_word(s);
        if (is_null_word(s)) return cJSON_CreateNull();
        if (b >= 0) return cJSON_CreateBool(b);
        if (number_word(s, &v)) return cJSON_CreateNumber(v);
    }
    return cJSON_CreateString(s);
}

static int where(const char *name, const yaml_node_t *n, const char *what) {
    return err_set("%s:%lu:%lu: YAML: %s", name, (unsigned long)n->start_mark.line + 1,
                   (unsigned long)n->start_mark.column + 1, what);
}

static cJSON *convert(yaml_document_t *doc, yaml_node_t *n, const char *name, int depth,
                      long *budget) {
    if (depth > YAML_DEPTH_MAX || --*budget < 0) {
        where(name, n, "nested too deeply or too many nodes (aliases?)");
        return NULL;
    }
    cJSON *out = NULL;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        out = scalar(n);
        break;
    case YAML_SEQUENCE_NODE:
        out = cJSON_CreateArray();
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             out && it < n->data.sequence.items.top; it++) {
            cJSON *c =
                convert(doc, yaml_document_get_node(doc, *it), name, depth + 1, budget);
            if (!c) {
                cJSON_Delete(out);
                return NULL;
            }
            cJSON_AddItemToArray(out, c);
        }
        break;
    case YAML_MAPPING_NODE:
        out = cJSON_CreateObject();
        for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
             out && pr < n->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = yaml_document_get_node(doc, pr->key);
            if (k->type != YAML_SCALAR_NODE) {
                where(name, k, "a mapping key must be a plain value");
                cJSON_Delete(out);
                return NULL;
            }
            cJSON *c = convert(doc, yaml_document_get_node(doc, pr->value), name,
                               depth + 1, budget);
            if (!c) {
                cJSON_Delete(out);
                return NULL;
            }
            cJSON_AddItemToObject(out, (const char *)k->data.scalar.value, c);
        }
        break;
    default:
        where(name, n, "empty node");
        return NULL;
    }
    if (!out) err_set("%s: out of memory reading YAML", name);
    return out;
}

cJSON *agents_yaml_parse(const char *text, size_t len, const char *name) {
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        err_set("%s: out of memory reading YAML", name);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        err_set("%s:%lu:%lu: YAML: %s%s%s", name,
                (unsigned long)parser.problem_mark.line + 1,
                (unsigned long)parser.problem_mark.column + 1,
                parser.problem ? parser.problem : "syntax error",
                parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return NULL;
    }
    cJSON *out = NULL;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root)
        err_set("%s: YAML: the file holds no document", name);
    else {
        long budget = YAML_NODES_MAX;
        out = convert(&doc, root, name, 0, &budget);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return out;
}
