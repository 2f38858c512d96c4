/* src/infer/serve_replica.c — a replica: the engine behind the wire format,
 * and the group leader's MPI loop.
 *
 * The leader never blocks on the coordinator while it has work: it drains
 * incoming requests with MPI_Iprobe, runs one engine step, and ships the
 * step's events with MPI_Isend (each send buffer is kept until its request
 * completes, then freed), so a slow coordinator costs it nothing. Only when
 * the engine is idle does it block, in MPI_Probe, for the next message.
 */
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "backend.h"
#include "decoder.h"
#include "err.h"
#include "serve.h"

int serve_engine_create(struct serve_engine *se, struct serve_model *m,
                        const struct serve_args *a) {
    memset(se, 0, sizeof *se);
    const struct ops *ops = backend_select(a->device);
    if (!ops) return -1;
    ops_cpu_set_threads(a->threads);
    se->dec = calloc(1, sizeof *se->dec);
    if (!se->dec) return err_set("out of memory");
    if (decoder_create(se->dec, &m->cfg, ops, m->params, 0)) {
        free(se->dec);
        se->dec = NULL;
        return -1;
    }
    struct engine_config ec = {
        .kv_cache_bytes = (size_t)(a->kv_cache_mb * 1048576.0),
        .max_batch_tokens = a->max_batch_tokens,
        .exact = a->exact,
    };
    se->eng = engine_create(se->dec, m->tok, &ec);
    if (!se->eng) {
        serve_engine_destroy(se);
        return -1;
    }
    return 0;
}

void serve_engine_destroy(struct serve_engine *se) {
    if (se->eng) engine_destroy(se->eng);
    if (se->dec) {
        decoder_destroy(se->dec);
        free(se->dec);
    }
    memset(se, 0, sizeof *se);
}

static int error_event(struct serve_buf *out, int64_t id, const char *msg) {
    struct serve_event ev = {.id = id, .kind = SERVE_EV_ERROR, .text = msg,
                             .text_len = (uint32_t)strlen(msg)};
    return serve_pack_event(out, &ev);
}

int serve_engine_submit(struct serve_engine *se, const struct serve_request *r,
                        struct serve_buf *out) {
    struct engine_request er = engine_request_defaults(se->eng);
    er.id = (uint64_t)r->id;
    er.prompt = r->prompt;
    er.n_prompt = r->n_prompt;
    er.max_tokens = r->max_tokens;
    er.sampling = (struct sampler_params){r->temperature, r->top_k, r->top_p,
                                          r->repetition_penalty, r->seed};
    er.stop = (const char *const *)r->stop;
    er.n_stop = r->n_stop;
    if (engine_submit(se->eng, &er) == 0) return 0;
    return error_event(out, r->id, err_msg());
}

int serve_engine_step(struct serve_engine *se, struct serve_buf *out) {
    const struct engine_event *ev;
    int n;
    if (engine_step(se->eng, &ev, &n)) return -1;
    for (int i = 0; i < n; i++) {
        const struct engine_event *e = &ev[i];
        struct serve_event w = {.id = (int64_t)e->id, .text = e->text,
                                .text_len = (uint32_t)e->text_len};
        if (e->kind == ENGINE_EVENT_TOKEN) {
            w.kind = SERVE_EV_TOKEN;
            w.value = e->token;
        } else if (e->why == ENGINE_FINISH_ERROR) {
            w.kind = SERVE_EV_ERROR;
            w.text = e->error ? e->error : "engine error";
            w.text_len = (uint32_t)strlen(w.text);
        } else {
            w.kind = SERVE_EV_DONE;
            w.value = (int32_t)e->why;
        }
        if (serve_pack_event(out, &w)) return -1;
    }
    return 0;
}

/* Sends in flight: each owns its buffer until MPI is done with it. */
struct outbox {
    struct serve_buf *buf;
    MPI_Request *req;
    int n, cap;
};

static void outbox_reap(struct outbox *o, int wait) {
    int k = 0;
    for (int i = 0; i < o->n; i++) {
        int done = 0;
        if (wait)
            MPI_Wait(&o->req[i], MPI_STATUS_IGNORE), done = 1;
        else
            MPI_Test(&o->req[i], &done, MPI_STATUS_IGNORE);
        if (done) {
            serve_buf_free(&o->buf[i]);
        } else {
            o->buf[k] = o->buf[i];
            o->req[k] = o->req[i];
            k++;
        }
    }
    o->n = k;
}

/* Send b (taken over) to the coordinator without waiting for it. */
static int outbox_send(struct outbox *o, struct serve_buf *b) {
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 16;
        struct serve_buf *nb = realloc(o->buf, (size_t)cap * sizeof *nb);
        if (nb) o->buf = nb;
        MPI_Request *nr = realloc(o->req, (size_t)cap * sizeof *nr);
        if (nr) o->req = nr;
        if (!nb || !nr) return err_set("out of memory");
        o->cap = cap;
    }
    o->buf[o->n] = *b;
    memset(b, 0, sizeof *b);
    if (MPI_Isend(o->buf[o->n].p, (int)o->buf[o->n].len, MPI_BYTE, 0, SERVE_TAG_EVENTS,
                  MPI_COMM_WORLD, &o->req[o->n]) != MPI_SUCCESS)
        return err_set("replica: sending events to the coordinator failed");
    o->n++;
    return 0;
}

/* Receive one message from the coordinator (status from a probe). Returns 1
 * on shutdown. */
static int receive(struct serve_engine *se, MPI_Status *st, struct serve_buf *out) {
    int len;
    MPI_Get_count(st, MPI_BYTE, &len);
    unsigned char *msg = malloc(len > 0 ? (size_t)len : 1);
    if (!msg) return err_set("out of memory");
    MPI_Recv(msg, len, MPI_BYTE, 0, st->MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    int rc = 0;
    if (st->MPI_TAG == SERVE_TAG_SHUTDOWN) {
        rc = 1;
    } else if (st->MPI_TAG == SERVE_TAG_REQUEST) {
        struct serve_request r;
        if (serve_unpack_request(msg, (size_t)len, &r)) {
            rc = error_event(out, -1, err_msg());
        } else {
            rc = se ? serve_engine_submit(se, &r, out)
                    : error_event(out, r.id, "this replica group has failed");
            serve_request_free(&r);
        }
    }
    free(msg);
    return rc;
}

int serve_replica_run(struct serve_model *m, const struct serve_args *a) {
    struct serve_engine se;
    struct serve_buf out = {0};
    struct outbox ob = {0};
    /* a replica that cannot start reports it as a replica failure (id -1)
     * and then only waits for the shutdown: the coordinator serves on with
     * the others */
    int failed = serve_engine_create(&se, m, a) != 0;
    free(m->params);
    m->params = NULL;
    if (failed) error_event(&out, -1, err_msg());
    int shutdown = 0;
    while (!shutdown) {
        MPI_Status st;
        int flag = 0;
        if (out.len && outbox_send(&ob, &out)) break;
        outbox_reap(&ob, 0);
        if (failed || engine_idle(se.eng)) { /* nothing to do: wait */
            MPI_Probe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
            flag = 1;
        }
        while (flag || (MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st), flag)) {
            flag = 0;
            int r = receive(failed ? NULL : &se, &st, &out);
            if (r < 0) break;
            if (r == 1) shutdown = 1;
        }
        if (shutdown || failed) continue;
        if (!engine_idle(se.eng) && serve_engine_step(&se, &out)) {
            failed = 1;
            out.len = 0;
            error_event(&out, -1, err_msg());
        }
    }
    if (out.len) outbox_send(&ob, &out);
    outbox_reap(&ob, 1);
    serve_buf_free(&out);
    free(ob.buf);
    free(ob.req);
    serve_engine_destroy(&se);
    return 0;
}
