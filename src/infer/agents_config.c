/* src/infer/agents_config.c — loading and validating the agents file.
 *
 * The file (JSON, or YAML turned into the same cJSON tree) is walked once
 * with the JSON path of every value at hand, so each error names the file and
 * the path: unknown or duplicate fields, wrong types, out-of-range sampling,
 * duplicate agent or scenario names, scenarios and routes naming missing
 * agents, pattern-specific rules, and scenarios that never end.
 */
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agents_config.h"
#include "agents_yaml.h"
#include "conv_prompt.h"
#include "err.h"

#define FILE_MAX (16L << 20)
#define SEED_MAX 9007199254740992.0 /* 2^53: exact in a JSON number */

struct ld {
    const char *file;
    struct agents_config *cfg;
};

static int fail(const struct ld *l, const char *path, const char *fmt, ...)
    LLMPI_PRINTF(3, 4);
static int fail(const struct ld *l, const char *path, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set("%s: %s: %s", l->file, path, msg);
}

static const char *type_name(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "true/false";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "something else";
}

static int want(const struct ld *l, const char *path, const cJSON *v, const char *what) {
    return fail(l, path, "expected %s, got %s", what, type_name(v));
}

/* out = a b c, cut short to fit n bytes (out may not overlap the parts). */
static void join(char *out, size_t n, const char *a, const char *b, const char *c) {
    const char *parts[3] = {a, b, c};
    size_t k = 0;
    for (int i = 0; i < 3; i++)
        for (const char *p = parts[i]; *p && k + 1 < n; p++)
            out[k++] = *p;
    out[k] = '\0';
}

/* path.key and path[i] */
static void child(char *out, size_t n, const char *path, const char *key) {
    join(out, n, path, *path ? "." : "", key);
}

static void elem(char *out, size_t n, const char *path, int i) {
    char idx[16];
    snprintf(idx, sizeof idx, "[%d]", i);
    join(out, n, path, idx, "");
}

/* An object whose fields are all in `allowed` (NULL-terminated), none twice. */
static int fields(const struct ld *l, const char *path, const cJSON *obj,
                  const char *const *allowed) {
    if (!cJSON_IsObject(obj))
        return want(l, *path ? path : "(top level)", obj, "an object");
    for (const cJSON *f = obj->child; f; f = f->next) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(*a, f->string);
        if (!ok) {
            char known[256] = "";
            for (const char *const *a = allowed; *a; a++) {
                strncat(known, a == allowed ? "" : ", ",
                        sizeof known - strlen(known) - 1);
                strncat(known, *a, sizeof known - strlen(known) - 1);
            }
            return fail(l, *path ? path : "(top level)", "unknown field '%s' (known: %s)",
                        f->string, known);
        }
        for (const cJSON *g = obj->child; g != f; g = g->next)
            if (!strcmp(g->string, f->string))
                return fail(l, *path ? path : "(top level)", "field '%s' appears twice",
                            f->string);
    }
    return 0;
}

static const cJSON *get(const cJSON *obj, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* A string field: 0 with *out a copy (NULL when absent and optional). */
static int str_field(const struct ld *l, const char *path, const cJSON *obj,
                     const char *key, int required, int nonempty, char **out) {
    char p[256];
    const cJSON *v = get(obj, key);
    child(p, sizeof p, path, key);
    *out = NULL;
    if (!v) return required ? fail(l, p, "required") : 0;
    if (!cJSON_IsString(v)) return want(l, p, v, "a string");
    if (nonempty && !*v->valuestring) return fail(l, p, "must not be empty");
    if (!(*out = strdup(v->valuestring))) return err_set("%s: out of memory", l->file);
    return 0;
}

static int num_field(const struct ld *l, const char *path, const cJSON *obj,
                     const char *key, double *out, int *found) {
    char p[256];
    const cJSON *v = get(obj, key);
    child(p, sizeof p, path, key);
    *found = v != NULL;
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return want(l, p, v, "a number");
    *out = v->valuedouble;
    return 0;
}

static int int_field(const struct ld *l, const char *path, const cJSON *obj,
                     const char *key, double min, double max, double *out) {
    char p[256], lo[32], hi[32];
    int found;
    double v = 0;
    if (num_field(l, path, obj, key, &v, &found)) return -1;
    if (!found) return 0;
    child(p, sizeof p, path, key);
    if (v != floor(v)) return fail(l, p, "expected an integer, got %g", v);
    snprintf(lo, sizeof lo, "%.0f", min);
    snprintf(hi, sizeof hi, "%.0f", max);
    if (v < min || v > max) return fail(l, p, "must be in [%s, %s]", lo, hi);
    *out = v;
    return 0;
}

/* An array of non-empty strings (copies); at most `max`. */
static int str_array(const struct ld *l, const char *p, const cJSON *v, int max,
                     char ***out, int *n) {
    char q[256], m[32];
    *out = NULL;
    *n = 0;
    if (!cJSON_IsArray(v)) return want(l, p, v, "an array of strings");
    int count = cJSON_GetArraySize(v);
    snprintf(m, sizeof m, "%d", max);
    if (count > max) return fail(l, p, "at most %s entries", m);
    if (count && !(*out = calloc((size_t)count, sizeof **out)))
        return err_set("%s: out of memory", l->file);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        elem(q, sizeof q, p, i);
        if (!cJSON_IsString(e)) return want(l, q, e, "a string");
        if (!*e->valuestring) return fail(l, q, "must not be empty");
        for (int j = 0; j < i; j++)
            if (!strcmp((*out)[j], e->valuestring))
                return fail(l, q, "'%s' is listed twice", e->valuestring);
        if (!((*out)[i] = strdup(e->valuestring)))
            return err_set("%s: out of memory", l->file);
        (*n)++;
    }
    return 0;
}

static void free_strs(char **s, int n) {
    for (int i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

static int check_name(const struct ld *l, const char *p, const char *name) {
    if (strlen(name) > AGENT_NAME_MAX)
        return fail(l, p, "'%s' is longer than 64 bytes", name);
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.'))
            return fail(l, p, "'%s': use letters, digits, '_', '-' and '.'", name);
    if (!strcmp(name, AGENT_USER))
        return fail(l, p, "'%s' is reserved for user messages", name);
    return 0;
}

static int load_sampling(const struct ld *l, const char *path, const cJSON *v,
                         struct agent_sampling *s) {
    static const char *const allowed[] = {
        "temperature", "top_k", "top_p", "repetition_penalty",
        "max_tokens",  "seed",  "stop",  NULL};
    char p[256];
    double d;
    int found;
    s->p = sampler_defaults();
    s->max_tokens = 128;
    if (!(s->stop[0] = strdup("\n"))) return err_set("%s: out of memory", l->file);
    s->n_stop = 1;
    if (!v) return 0;
    if (fields(l, path, v, allowed)) return -1;
    if (num_field(l, path, v, "temperature", &d, &found)) return -1;
    child(p, sizeof p, path, "temperature");
    if (found && d < 0) return fail(l, p, "must be >= 0 (0 = greedy)");
    if (found) s->p.temperature = (float)d;
    d = s->p.top_k;
    if (int_field(l, path, v, "top_k", 0, 1e9, &d)) return -1;
    s->p.top_k = (int)d;
    if (num_field(l, path, v, "top_p", &d, &found)) return -1;
    child(p, sizeof p, path, "top_p");
    if (found && !(d > 0 && d <= 1)) return fail(l, p, "must be in (0, 1] (1 = off)");
    if (found) s->p.top_p = (float)d;
    if (num_field(l, path, v, "repetition_penalty", &d, &found)) return -1;
    child(p, sizeof p, path, "repetition_penalty");
    if (found && !(d > 0)) return fail(l, p, "must be > 0 (1 = off)");
    if (found) s->p.repetition_penalty = (float)d;
    d = s->max_tokens;
    if (int_field(l, path, v, "max_tokens", 1, 1e6, &d)) return -1;
    s->max_tokens = (int)d;
    d = 0;
    if (int_field(l, path, v, "seed", 0, SEED_MAX, &d)) return -1;
    s->p.seed = (uint64_t)d;
    const cJSON *st = get(v, "stop");
    if (st) {
        char **list;
        int n;
        child(p, sizeof p, path, "stop");
        free(s->stop[0]);
        s->stop[0] = NULL;
        s->n_stop = 0;
        int rc = str_array(l, p, st, STOPSTR_MAX, &list, &n);
        for (int i = 0; i < n; i++)
            s->stop[i] = list[i];
        s->n_stop = n;
        free(list);
        if (rc) return -1;
    }
    return 0;
}

static int load_agent(const struct ld *l, const char *path, const cJSON *v,
                      struct agent_def *a) {
    static const char *const allowed[] = {"name",     "persona",   "template",
                                          "sampling", "subscribe", NULL};
    char p[256];
    if (fields(l, path, v, allowed)) return -1;
    if (str_field(l, path, v, "name", 1, 1, &a->name)) return -1;
    child(p, sizeof p, path, "name");
    if (check_name(l, p, a->name)) return -1;
    if (str_field(l, path, v, "persona", 1, 0, &a->persona)) return -1;
    if (str_field(l, path, v, "template", 0, 1, &a->tmpl)) return -1;
    if (!a->tmpl && !(a->tmpl = strdup(AGENT_DEFAULT_TEMPLATE)))
        return err_set("%s: out of memory", l->file);
    child(p, sizeof p, path, "template");
    if (conv_template_check(a->tmpl)) {
        char why[512];
        snprintf(why, sizeof why, "%s", err_msg());
        return fail(l, p, "%s", why);
    }
    child(p, sizeof p, path, "sampling");
    if (load_sampling(l, p, get(v, "sampling"), &a->sampling)) return -1;
    const cJSON *sub = get(v, "subscribe");
    child(p, sizeof p, path, "subscribe");
    if (sub && str_array(l, p, sub, 1 << 16, &a->subscribe, &a->n_subscribe)) return -1;
    return 0;
}

static int load_replicas(const struct ld *l, const cJSON *v) {
    static const char *const allowed[] = {"weights", NULL};
    char q[64];
    if (!v) return 0;
    if (fields(l, "replicas", v, allowed)) return -1;
    const cJSON *w = get(v, "weights");
    if (!w) return 0;
    if (!cJSON_IsArray(w)) return want(l, "replicas.weights", w, "an array of numbers");
    int n = cJSON_GetArraySize(w);
    if (!n) return fail(l, "replicas.weights", "must not be empty");
    if (!(l->cfg->replica_weights = calloc((size_t)n, sizeof(double))))
        return err_set("%s: out of memory", l->file);
    int i = 0;
    for (const cJSON *e = w->child; e; e = e->next, i++) {
        elem(q, sizeof q, "replicas.weights", i);
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
            return want(l, q, e, "a number");
        if (!(e->valuedouble > 0)) return fail(l, q, "must be > 0");
        l->cfg->replica_weights[i] = e->valuedouble;
        l->cfg->n_replica_weights++;
    }
    return 0;
}

static int agent_ref(const struct ld *l, const char *p, const char *name) {
    int i = agents_config_agent(l->cfg, name);
    if (i < 0) fail(l, p, "no agent named '%s'", name);
    return i;
}

static int subscribes(const struct agent_def *a, const char *topic) {
    for (int i = 0; i < a->n_subscribe; i++)
        if (!strcmp(a->subscribe[i], topic)) return 1;
    return 0;
}

static int load_routes(const struct ld *l, const char *path, const cJSON *v,
                       struct scenario_def *s) {
    char p[256], q[256];
    child(p, sizeof p, path, "routes");
    if (!cJSON_IsObject(v)) return want(l, p, v, "an object {specialist: [keywords]}");
    int n = cJSON_GetArraySize(v);
    if (n && !(s->routes = calloc((size_t)n, sizeof *s->routes)))
        return err_set("%s: out of memory", l->file);
    for (const cJSON *r = v->child; r; r = r->next) {
        child(q, sizeof q, p, r->string);
        for (const cJSON *g = v->child; g != r; g = g->next)
            if (!strcmp(g->string, r->string))
                return fail(l, p, "field '%s' appears twice", r->string);
        struct scenario_route *rt = &s->routes[s->n_routes++];
        if ((rt->agent = agent_ref(l, q, r->string)) < 0) return -1;
        int member = 0;
        for (int i = 0; i < s->n_agents; i++)
            member |= s->agents[i] == rt->agent;
        if (!member)
            return fail(l, q,
                        "'%s' is not one of this scenario's agents (the specialists)",
                        r->string);
        if (str_array(l, q, r, 1 << 16, &rt->keywords, &rt->n_keywords)) return -1;
        if (!rt->n_keywords) return fail(l, q, "needs at least one keyword");
    }
    return 0;
}

/* Pattern rules once the fields are read. */
static int check_pattern(const struct ld *l, const char *path, const cJSON *v,
                         struct scenario_def *s) {
    char p[256];
    const char *pat = conv_pattern_name(s->pattern);
    if (s->pattern != CONV_ROUTER && (get(v, "router") || get(v, "routes"))) {
        child(p, sizeof p, path, get(v, "router") ? "router" : "routes");
        return fail(l, p, "only the router pattern has routes (this is %s)", pat);
    }
    if (s->pattern != CONV_BROADCAST && s->topic) {
        child(p, sizeof p, path, "topic");
        return fail(l, p, "only the broadcast pattern has a topic (this is %s)", pat);
    }
    child(p, sizeof p, path, "agents");
    switch (s->pattern) {
    case CONV_TWO_AGENT:
        if (s->n_agents != 2) return fail(l, p, "%s needs exactly 2 agents", pat);
        break;
    case CONV_ROUND_ROBIN:
        if (s->n_agents < 2) return fail(l, p, "%s needs at least 2 agents", pat);
        break;
    case CONV_ROUTER:
        if (s->n_agents < 1)
            return fail(l, p, "router needs at least 1 specialist agent");
        if (s->router < 0 && !s->n_routes)
            return fail(l, path, "the router pattern needs a router agent or routes");
        break;
    case CONV_BROADCAST: {
        child(p, sizeof p, path, "topic");
        if (!s->topic) return fail(l, p, "required for the broadcast pattern");
        if (s->n_agents) {
            char q[256];
            for (int i = 0; i < s->n_agents; i++)
                if (!subscribes(&l->cfg->agents[s->agents[i]], s->topic)) {
                    child(p, sizeof p, path, "agents");
                    elem(q, sizeof q, p, i);
                    return fail(l, q, "agent '%s' does not subscribe to topic '%s'",
                                l->cfg->agents[s->agents[i]].name, s->topic);
                }
            break;
        }
        /* no list: every subscriber of the topic takes part */
        for (int i = 0; i < l->cfg->n_agents; i++)
            s->n_agents += subscribes(&l->cfg->agents[i], s->topic);
        if (!s->n_agents) return fail(l, p, "no agent subscribes to '%s'", s->topic);
        if (!(s->agents = calloc((size_t)s->n_agents, sizeof(int))))
            return err_set("%s: out of memory", l->file);
        for (int i = 0, k = 0; i < l->cfg->n_agents; i++)
            if (subscribes(&l->cfg->agents[i], s->topic)) s->agents[k++] = i;
        break;
    }
    }
    if ((s->pattern == CONV_TWO_AGENT || s->pattern == CONV_ROUND_ROBIN) && !s->opening) {
        child(p, sizeof p, path, "opening");
        return fail(l, p, "required for the %s pattern (the first message)", pat);
    }
    if (!s->max_turns && !s->stop_phrase && !s->token_budget)
        return fail(
            l, path,
            "scenario '%s' is a cycle with no termination: set max_turns, stop_phrase "
            "or token_budget",
            s->name);
    return 0;
}

static int load_scenario(const struct ld *l, const char *path, const cJSON *v,
                         struct scenario_def *s) {
    static const char *const allowed[] = {
        "name",      "pattern",     "agents",       "router", "routes",         "opening",
        "max_turns", "stop_phrase", "token_budget", "topic",  "history_window", NULL};
    static const char *const pats[] = {"two-agent", "router", "round-robin", "broadcast"};
    char p[256], q[256], *pat = NULL, *router = NULL, **names = NULL;
    double d;
    s->router = -1;
    if (fields(l, path, v, allowed)) return -1;
    if (str_field(l, path, v, "name", 1, 1, &s->name)) return -1;
    child(p, sizeof p, path, "name");
    if (check_name(l, p, s->name)) return -1;
    if (str_field(l, path, v, "pattern", 1, 1, &pat)) return -1;
    int k = 0;
    while (k < 4 && strcmp(pat, pats[k]))
        k++;
    child(p, sizeof p, path, "pattern");
    if (k == 4) {
        int rc =
            fail(l, p, "unknown pattern '%s' (two-agent, router, round-robin, broadcast)",
                 pat);
        free(pat);
        return rc;
    }
    free(pat);
    s->pattern = (enum conv_pattern)k;
    const cJSON *ag = get(v, "agents");
    if (ag) {
        int n;
        child(p, sizeof p, path, "agents");
        int rc = str_array(l, p, ag, 1 << 16, &names, &n);
        if (!rc && n && !(s->agents = calloc((size_t)n, sizeof(int))))
            rc = err_set("%s: out of memory", l->file);
        for (int i = 0; !rc && i < n; i++) {
            elem(q, sizeof q, p, i);
            if ((s->agents[i] = agent_ref(l, q, names[i])) < 0) rc = -1;
            s->n_agents += !rc;
        }
        free_strs(names, n);
        if (rc) return -1;
    }
    if (str_field(l, path, v, "router", 0, 1, &router)) return -1;
    if (router) {
        child(p, sizeof p, path, "router");
        s->router = agent_ref(l, p, router);
        free(router);
        if (s->router < 0) return -1;
        for (int i = 0; i < s->n_agents; i++)
            if (s->agents[i] == s->router)
                return fail(l, p,
                            "the router '%s' is also listed as a specialist in agents",
                            l->cfg->agents[s->router].name);
    }
    if (get(v, "routes") && load_routes(l, path, get(v, "routes"), s)) return -1;
    if (str_field(l, path, v, "opening", 0, 0, &s->opening)) return -1;
    d = 0;
    if (int_field(l, path, v, "max_turns", 1, 1e9, &d)) return -1;
    s->max_turns = (int)d;
    if (str_field(l, path, v, "stop_phrase", 0, 1, &s->stop_phrase)) return -1;
    d = 0;
    if (int_field(l, path, v, "token_budget", 1, 1e15, &d)) return -1;
    s->token_budget = (long)d;
    if (str_field(l, path, v, "topic", 0, 1, &s->topic)) return -1;
    d = 0;
    if (int_field(l, path, v, "history_window", 0, 1e9, &d)) return -1;
    s->history_window = (int)d;
    return check_pattern(l, path, v, s);
}

/* An array field of objects: its size (0 when absent), -1 on a wrong type. */
static int array_of(const struct ld *l, const cJSON *root, const char *key,
                    int required) {
    const cJSON *v = get(root, key);
    if (!v) return required ? fail(l, key, "required") : 0;
    if (!cJSON_IsArray(v)) return want(l, key, v, "an array");
    int n = cJSON_GetArraySize(v);
    if (!n && required) return fail(l, key, "must not be empty");
    return n;
}

static int load_root(const struct ld *l, const cJSON *root) {
    static const char *const allowed[] = {"agents", "replicas", "scenarios", NULL};
    struct agents_config *c = l->cfg;
    char p[64], q[64];
    if (fields(l, "", root, allowed)) return -1;
    int na = array_of(l, root, "agents", 1), ns = array_of(l, root, "scenarios", 0);
    if (na < 0 || ns < 0) return -1;
    if (!(c->agents = calloc((size_t)na, sizeof *c->agents)) ||
        (ns && !(c->scenarios = calloc((size_t)ns, sizeof *c->scenarios))))
        return err_set("%s: out of memory", l->file);
    int i = 0;
    for (const cJSON *a = get(root, "agents")->child; a; a = a->next, i++) {
        elem(p, sizeof p, "agents", i);
        c->n_agents++;
        if (load_agent(l, p, a, &c->agents[i])) return -1;
        for (int j = 0; j < i; j++)
            if (!strcmp(c->agents[j].name, c->agents[i].name)) {
                child(q, sizeof q, p, "name");
                elem(p, sizeof p, "agents", j);
                return fail(l, q, "duplicate agent name '%s' (also %s)",
                            c->agents[i].name, p);
            }
    }
    if (load_replicas(l, get(root, "replicas"))) return -1;
    i = 0;
    for (const cJSON *s = ns ? get(root, "scenarios")->child : NULL; s;
         s = s->next, i++) {
        elem(p, sizeof p, "scenarios", i);
        c->n_scenarios++;
        if (load_scenario(l, p, s, &c->scenarios[i])) return -1;
        for (int j = 0; j < i; j++)
            if (!strcmp(c->scenarios[j].name, c->scenarios[i].name)) {
                child(q, sizeof q, p, "name");
                elem(p, sizeof p, "scenarios", j);
                return fail(l, q, "duplicate scenario name '%s' (also %s)",
                            c->scenarios[i].name, p);
            }
    }
    return 0;
}

/* "NAME:LINE:COL: what" for the byte at `at`. */
static void syntax_error(const char *text, const char *at, const char *name,
                         const char *what) {
    long line = 1, col = 1;
    for (const char *p = text; p < at; p++, col++)
        if (*p == '\n') line++, col = 0;
    err_set("%s:%ld:%ld: %s", name, line, col, what);
}

static cJSON *parse_json(const char *text, size_t len, const char *name) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        end = cJSON_GetErrorPtr();
        syntax_error(text, end && end >= text && end <= text + len ? end : text + len,
                     name, "JSON syntax error");
        return NULL;
    }
    while (end < text + len && strchr(" \t\r\n", *end) && *end)
        end++;
    if (end < text + len) {
        syntax_error(text, end, name,
                     "JSON syntax error: text after the end of the document");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

int agents_config_parse(const char *text, size_t len, const char *name, int yaml,
                        struct agents_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = yaml ? agents_yaml_parse(text, len, name) : parse_json(text, len, name);
    if (!root) return -1;
    struct ld l = {name, cfg};
    int rc = load_root(&l, root);
    cJSON_Delete(root);
    if (!rc && !(cfg->path = strdup(name))) rc = err_set("%s: out of memory", name);
    if (rc) agents_config_free(cfg);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int agents_config_load(const char *path, struct agents_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    FILE *f = fopen(path, "rb");
    if (!f) return err_set("%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc((size_t)FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, (size_t)FILE_MAX + 1, f) : 0;
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return err_set("%s: cannot read%s", path, buf ? "" : " (out of memory)");
    }
    if (n > (size_t)FILE_MAX) {
        free(buf);
        return err_set("%s: larger than %ld bytes", path, FILE_MAX);
    }
    buf[n] = '\0';
    int yaml;
    if (ends_with(path, ".yaml") || ends_with(path, ".yml"))
        yaml = 1;
    else if (ends_with(path, ".json"))
        yaml = 0;
    else {
        size_t i = strspn(buf, " \t\r\n");
        yaml = buf[i] != '{';
    }
    int rc = agents_config_parse(buf, n, path, yaml, cfg);
    free(buf);
    return rc;
}

static void free_sampling(struct agent_sampling *s) {
    for (int i = 0; i < s->n_stop; i++)
        free(s->stop[i]);
}

void agents_config_free(struct agents_config *cfg) {
    for (int i = 0; cfg->agents && i < cfg->n_agents; i++) {
        struct agent_def *a = &cfg->agents[i];
        free(a->name);
        free(a->persona);
        free(a->tmpl);
        free_sampling(&a->sampling);
        free_strs(a->subscribe, a->n_subscribe);
    }
    for (int i = 0; cfg->scenarios && i < cfg->n_scenarios; i++) {
        struct scenario_def *s = &cfg->scenarios[i];
        free(s->name);
        free(s->agents);
        for (int r = 0; r < s->n_routes; r++)
            free_strs(s->routes[r].keywords, s->routes[r].n_keywords);
        free(s->routes);
        free(s->opening);
        free(s->stop_phrase);
        free(s->topic);
    }
    free(cfg->agents);
    free(cfg->scenarios);
    free(cfg->replica_weights);
    free(cfg->path);
    memset(cfg, 0, sizeof *cfg);
}

int agents_config_agent(const struct agents_config *cfg, const char *name) {
    for (int i = 0; i < cfg->n_agents; i++)
        if (cfg->agents[i].name && !strcmp(cfg->agents[i].name, name)) return i;
    return -1;
}

const struct scenario_def *agents_config_scenario(const struct agents_config *cfg,
                                                  const char *name) {
    char known[512] = "";
    for (int i = 0; i < cfg->n_scenarios; i++) {
        if (!strcmp(cfg->scenarios[i].name, name)) return &cfg->scenarios[i];
        strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
        strncat(known, cfg->scenarios[i].name, sizeof known - strlen(known) - 1);
    }
    err_set("%s: no scenario named '%s' (%s%s)", cfg->path ? cfg->path : "agents file",
            name, cfg->n_scenarios ? "there are: " : "the file has none", known);
    return NULL;
}

const char *conv_pattern_name(enum conv_pattern p) {
    switch (p) {
    case CONV_TWO_AGENT:
        return "two-agent";
    case CONV_ROUTER:
        return "router";
    case CONV_ROUND_ROBIN:
        return "round-robin";
    case CONV_BROADCAST:
        return "broadcast";
    }
    return "?";
}
