/* src/infer/conv_route.c — router reply parsing and keyword routes (ASCII
 * case folding: names are ASCII, keywords are matched byte for byte). */
#include <string.h>

#include "conv_route.h"

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

static int word_char(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

/* First position of needle in hay (any case), or NULL. */
static const char *find_nocase(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    if (!n) return NULL;
    for (const char *p = hay; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] &&
               lower((unsigned char)p[i]) == lower((unsigned char)needle[i]))
            i++;
        if (i == n) return p;
    }
    return NULL;
}

/* First whole-word occurrence of name in text, or NULL. */
static const char *find_word(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *p = find_nocase(text, name); p; p = find_nocase(p + 1, name))
        if ((p == text || !word_char((unsigned char)p[-1])) &&
            !word_char((unsigned char)p[n]))
            return p;
    return NULL;
}

int conv_route_named(const struct agents_config *cfg, const struct scenario_def *sc,
                     const char *reply) {
    const char *best = NULL;
    int pick = -1;
    for (int i = 0; reply && i < sc->n_agents; i++) {
        const char *name = cfg->agents[sc->agents[i]].name;
        const char *at = find_word(reply, name);
        if (at && (!best || at < best ||
                   (at == best && strlen(name) > strlen(cfg->agents[pick].name)))) {
            best = at;
            pick = sc->agents[i];
        }
    }
    return pick;
}

int conv_route_keywords(const struct scenario_def *sc, const char *message) {
    int pick = -1, most = 0;
    for (int r = 0; message && r < sc->n_routes; r++) {
        int hits = 0;
        for (int k = 0; k < sc->routes[r].n_keywords; k++)
            hits += find_nocase(message, sc->routes[r].keywords[k]) != NULL;
        if (hits > most) {
            most = hits;
            pick = sc->routes[r].agent;
        }
    }
    return pick;
}

int conv_route_pick(const struct agents_config *cfg, const struct scenario_def *sc,
                    const char *reply, const char *message) {
    int a = conv_route_named(cfg, sc, reply);
    if (a < 0) a = conv_route_keywords(sc, message);
    return a >= 0 ? a : sc->agents[0];
}
