/* src/infer/sampler.c — temperature, top-k, top-p and repetition penalty.
 *
 * Semantics are in sampler.h. How, and why it is cheap at V = 50257:
 *  - top-k keeps a min-heap of the k best (logit, -id) pairs: O(V log k)
 *    instead of sorting V entries; the k survivors are then sorted.
 *  - top-p only needs the ids that can be in the nucleus. With m candidates
 *    of total (unnormalised) mass Z, the ids with w >= t = (1 - p) Z / m
 *    form a prefix of the sorted order whose mass exceeds p Z (the others
 *    are fewer than m, each below t, so they hold less than (1 - p) Z).
 *    The nucleus -- the shortest prefix with mass >= p Z -- lies inside it,
 *    so only those ids are sorted; for a peaked distribution that is a few.
 *  - weights are exp((z - max) / T) in double, so a large vocabulary of
 *    small probabilities sums without losing the tail.
 *  - the draw is u = uniform[0,1) * kept mass, walking the kept ids in a
 *    fixed order: the same seed and logits give the same id.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sampler.h"

struct sampler_params sampler_defaults(void) {
    struct sampler_params p = {1.0f, 0, 1.0f, 1.0f, 0};
    return p;
}

int sampler_params_check(const struct sampler_params *p) {
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return err_set("temperature %g must be a finite number >= 0", p->temperature);
    if (p->top_k < 0) return err_set("top-k %d must be >= 0 (0 = off)", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return err_set("top-p %g must be in (0, 1] (1 = off)", p->top_p);
    if (!(p->repetition_penalty > 0.0f) || !isfinite(p->repetition_penalty))
        return err_set("repetition penalty %g must be a finite number > 0 (1 = off)",
                       p->repetition_penalty);
    return 0;
}

int sampler_init(struct sampler *s, const struct sampler_params *p, int vocab) {
    memset(s, 0, sizeof *s);
    if (sampler_params_check(p)) return -1;
    if (vocab < 1) return err_set("sampler: vocabulary of %d ids", vocab);
    s->p = *p;
    s->vocab = vocab;
    rng_seed(&s->rng, p->seed);
    s->z = malloc((size_t)vocab * sizeof *s->z);
    s->cand = malloc((size_t)vocab * sizeof *s->cand);
    s->seen = calloc((size_t)vocab, 1);
    if (!s->z || !s->cand || !s->seen) {
        sampler_free(s);
        return err_set("sampler: out of memory for a vocabulary of %d", vocab);
    }
    return 0;
}

void sampler_free(struct sampler *s) {
    free(s->z);
    free(s->cand);
    free(s->seen);
    memset(s, 0, sizeof *s);
}

/* a ranks before b: larger key, then smaller id */
static int better(const struct sampler_cand *a, const struct sampler_cand *b) {
    return a->key > b->key || (a->key == b->key && a->id < b->id);
}

static int cmp_desc(const void *pa, const void *pb) {
    const struct sampler_cand *a = pa, *b = pb;
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

/* Min-heap (worst candidate at the root) sift-down. */
static void sift_down(struct sampler_cand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(&h[w], &h[l])) w = l;
        if (r < n && better(&h[w], &h[r])) w = r;
        if (w == i) return;
        struct sampler_cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void sift_up(struct sampler_cand *h, int i) {
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!better(&h[p], &h[i])) return;
        struct sampler_cand t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* The k best of z[0..n) into cand[0..k), sorted best first. */
static void top_k(const float *z, int n, int k, struct sampler_cand *cand) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        struct sampler_cand c = {z[i], i};
        if (m < k) {
            cand[m] = c;
            sift_up(cand, m++);
        } else if (better(&c, &cand[0])) {
            cand[0] = c;
            sift_down(cand, m, 0);
        }
    }
    qsort(cand, (size_t)m, sizeof *cand, cmp_desc);
}

int32_t sampler_sample(struct sampler *s, const float *logits, int n,
                       const int32_t *history, size_t n_history) {
    if (n < 1 || n > s->vocab)
        return err_set("sampler: %d logits for a sampler of vocabulary %d", n, s->vocab);
    float *z = s->z;
    for (int i = 0; i < n; i++) {
        if (isnan(logits[i]) || logits[i] == INFINITY)
            return err_set("sampler: logit %d is %s", i,
                           isnan(logits[i]) ? "NaN" : "+inf");
        z[i] = logits[i];
    }
    const float rp = s->p.repetition_penalty;
    if (rp != 1.0f && history) {
        for (size_t j = 0; j < n_history; j++) {
            int32_t id = history[j];
            if (id < 0 || id >= n || s->seen[id]) continue;
            s->seen[id] = 1;
            z[id] = z[id] > 0.0f ? z[id] / rp : z[id] * rp;
        }
        for (size_t j = 0; j < n_history; j++)
            if (history[j] >= 0 && history[j] < n) s->seen[history[j]] = 0;
    }

    /* greedy */
    if (s->p.temperature == 0.0f || s->p.top_k == 1) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (z[i] > z[best]) best = i;
        return best;
    }

    /* candidates: the top k (sorted) or every id (in id order) */
    struct sampler_cand *c = s->cand;
    int m, sorted;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        top_k(z, n, s->p.top_k, c);
        m = s->p.top_k;
        sorted = 1;
    } else {
        for (int i = 0; i < n; i++)
            c[i] = (struct sampler_cand){z[i], i};
        m = n;
        sorted = 0;
    }
    double mx = -INFINITY;
    for (int i = 0; i < m; i++)
        mx = c[i].key > mx ? c[i].key : mx;
    if (mx == -INFINITY) return c[0].id; /* everything masked: nothing to weigh */

    /* key := unnormalised probability */
    const double invT = 1.0 / s->p.temperature;
    double total = 0.0;
    for (int i = 0; i < m; i++) {
        c[i].key = exp((c[i].key - mx) * invT);
        total += c[i].key;
    }

    if (s->p.top_p < 1.0f) {
        const double p = s->p.top_p;
        const double t = (1.0 - p) * total / m;
        int kept = 0;
        for (int i = 0; i < m; i++)
            if (c[i].key >= t) c[kept++] = c[i];
        if (!sorted) qsort(c, (size_t)kept, sizeof *c, cmp_desc);
        double cum = 0.0, goal = p * total;
        int cut = kept;
        for (int i = 0; i < kept; i++) {
            cum += c[i].key;
            if (cum >= goal) {
                cut = i + 1;
                break;
            }
        }
        m = cut;
        total = 0.0;
        for (int i = 0; i < m; i++)
            total += c[i].key;
    }

    double u = rng_uniform(&s->rng) * total, cum = 0.0;
    for (int i = 0; i < m; i++) {
        cum += c[i].key;
        if (u < cum) return c[i].id;
    }
    return c[m - 1].id; /* u rounded up to the total */
}
